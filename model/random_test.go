package model

import (
	"slices"
	"testing"
)

// TestRandomWeightsValid: random weights of every architecture the
// reference checkpoints cover pass Validate, and a seed fixes them.
func TestRandomWeightsValid(t *testing.T) {
	base := Config{Dim: 64, HiddenDim: 128, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16,
		VocabSize: 100, MaxSeqLen: 32, NormEps: 1e-5, RopeTheta: 10000}
	tied, bias, qknorm := base, base, base
	tied.TiedOutput = true
	bias.QKVBias = true
	qknorm.QKNorm = true
	for _, c := range []Config{base, tied, bias, qknorm} {
		w := RandomWeights(c, 7)
		if err := w.Validate(); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		again := RandomWeights(c, 7)
		if !slices.Equal(w.Layers[1].Down.Dense, again.Layers[1].Down.Dense) || !slices.Equal(w.Embedding, again.Embedding) {
			t.Fatalf("%+v: the same seed gave different weights", c)
		}
		if other := RandomWeights(c, 8); slices.Equal(w.Embedding, other.Embedding) {
			t.Fatalf("%+v: seeds 7 and 8 gave the same embedding", c)
		}
	}
}
