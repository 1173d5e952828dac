// Package archtest loads the tiny per-architecture checkpoints of
// model/testdata/arch and their golden logits, for the tests of the packages
// that run them (model/graph and model/infer). The golden logits were
// computed by make_reference.py there, with numpy, from transformers'
// modeling files, not from golora's code.
package archtest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/golora/golora/model"
)

// Families names the checkpoints, one per supported architecture;
// mistral_window's window (4) is shorter than its 12 tokens.
var Families = []string{"llama3", "llama_linear", "qwen2", "qwen3", "mistral", "phi3", "phi4_longrope", "mistral_window"}

// Golden is a checkpoint's golden.json: the tokens and the reference logits
// at every position.
type Golden struct {
	Tokens []int       `json:"tokens"`
	Logits [][]float64 `json:"logits"`
}

// Load reads the checkpoint name and its golden.json from
// ../testdata/arch, as seen from a package directory under model/.
func Load(t testing.TB, name string) (*model.Weights, Golden) {
	t.Helper()
	dir := filepath.Join("..", "testdata", "arch", name)
	base, err := model.Load(context.Background(), dir, model.LoadOptions{WeightsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g Golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return base.Weights, g
}
