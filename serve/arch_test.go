package serve

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/golora/golora/model"
)

// TestBatchedModelRunsQwen2: the batched model serves architectures beyond
// Llama 2 (here Qwen2's q/k/v biases): three rows, one with an adapter,
// prefilled and decoded together give the logits PerRowModel gives.
func TestBatchedModelRunsQwen2(t *testing.T) {
	base, err := model.Load(context.Background(), filepath.Join("..", "model", "testdata", "arch", "qwen2"), model.LoadOptions{WeightsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	w := base.Weights
	store := NewStore(mapSource{"a": newAdapter(t, w, 4, 7)}, w, StoreOptions{})
	h, err := store.Acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	batched, err := NewBatchedModel(w)
	if err != nil {
		t.Fatal(err)
	}
	models := []Model{batched, NewPerRowModel(w, 0)}
	prompts := [][]int{{1, 5, 9, 2}, {1, 7}, {1, 3, 3, 8, 20, 11}}
	logits := make([][][]float32, len(models))
	for mi, m := range models {
		var rows []Row
		for i, p := range prompts {
			s, err := m.NewSequence(16)
			if err != nil {
				t.Fatal(err)
			}
			r := Row{Seq: s, Tokens: p, Logits: make([]float32, w.Config.VocabSize)}
			if i == 1 {
				r.Adapter = h.Adapter()
			}
			rows = append(rows, r)
		}
		for step := range 3 {
			if err := m.Step(rows); err != nil {
				t.Fatal(err)
			}
			for i := range rows {
				logits[mi] = append(logits[mi], append([]float32(nil), rows[i].Logits...))
				rows[i].Tokens = []int{(step*7 + i*3) % w.Config.VocabSize}
			}
		}
	}
	for i, want := range logits[1] {
		for j, v := range want {
			if d := math.Abs(float64(v - logits[0][i][j])); d > 1e-4*max(1, math.Abs(float64(v))) {
				t.Fatalf("row/step %d logit %d: batched %g, per row %g", i, j, logits[0][i][j], v)
			}
		}
	}
}
