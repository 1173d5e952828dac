package serve

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golora/golora/model"
)

// TestBatchedModelRefusesExtensions: infer.Batch implements Llama 2's
// forward pass only, so a Qwen2 base (q/k/v biases) is refused with what
// is missing rather than served with wrong logits.
func TestBatchedModelRefusesExtensions(t *testing.T) {
	base, err := model.Load(context.Background(), filepath.Join("..", "model", "testdata", "arch", "qwen2"), model.LoadOptions{WeightsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewBatchedModel(base.Weights)
	if err == nil || !strings.Contains(err.Error(), "q/k/v biases") || !strings.Contains(err.Error(), "NewPerRowModel") {
		t.Fatalf("NewBatchedModel on Qwen2: err %v, want a refusal naming the biases", err)
	}
}
