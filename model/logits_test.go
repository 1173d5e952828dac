package model_test

import (
	"context"
	"slices"
	"testing"

	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
	"github.com/golora/golora/nf4"
)

// prefillLogits runs tokens through w and returns a copy of the logits.
func prefillLogits(t *testing.T, w *model.Weights, tokens []int) []float32 {
	t.Helper()
	g, err := infer.NewGenerator(w, infer.GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logits, err := g.Prefill(tokens)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(logits)
}

// TestWriteLoadHFNF4Logits: an NF4 model written with WriteHF and loaded
// back holds the same matrices (TestWriteLoadHFNF4), so it gives the same
// logits bit for bit.
func TestWriteLoadHFNF4Logits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tied  bool
		dtype safetensors.DType
		round func(float32) float32
		opts  nf4.Options
	}{
		{"double quant, untied, bf16", false, safetensors.BF16, model.HFRoundBF16, nf4.Options{}},
		{"plain absmax, tied, f32, block 128", true, safetensors.F32, nil, nf4.Options{BlockSize: 128, DisableDoubleQuant: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := model.HFTestConfig()
			cfg.TiedOutput = tc.tied
			want := model.HFNF4Weights(t, cfg, 11, tc.round, tc.opts)
			dir := t.TempDir()
			if err := model.WriteHF(dir, want, tc.dtype); err != nil {
				t.Fatal(err)
			}
			got, err := model.Load(context.Background(), dir, model.LoadOptions{WeightsOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			tokens := []int{1, 5, 7, 30, 2, 9, 9}
			wantLogits, gotLogits := prefillLogits(t, want, tokens), prefillLogits(t, got.Weights, tokens)
			if !slices.Equal(gotLogits, wantLogits) {
				t.Fatalf("logits of the loaded model differ: %v vs %v", gotLogits[:4], wantLogits[:4])
			}
		})
	}
}
