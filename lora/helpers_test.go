package lora

import (
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/internal/testmodel"
	"github.com/golora/golora/model"
)

// linearNames are the Hugging Face names of a block's linears, in the order
// of model.Layer's fields.
var linearNames = [...]string{
	"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
	"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
}

// testBase builds a LLaMA-shaped base with N(0, 0.02) dense weights from a
// fixed seed. Only the linears whose short names are in alloc get weights
// (all when alloc is nil); the others keep their shape with no data, which is
// enough for matching and shape checks.
func testBase(t testing.TB, c model.Config, seed uint64, alloc map[string]bool) *model.Weights {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	randn := func(n int) []float32 { return testmodel.Normals(rng, n, 0.02) }
	w := model.NewWeights(c)
	w.Norm = randn(c.Dim)
	for i := range w.Layers {
		l := &w.Layers[i]
		l.AttnNorm, l.MLPNorm = randn(c.Dim), randn(c.Dim)
		for j, lin := range []*model.Linear{l.Q, l.K, l.V, l.O, l.Gate, l.Up, l.Down} {
			if alloc == nil || alloc[linearNames[j]] {
				lin.Dense = randn(lin.Out * lin.In)
			}
		}
	}
	if alloc == nil || alloc["lm_head"] {
		w.Embedding = randn(c.VocabSize * c.Dim)
		w.Output.Dense = randn(c.VocabSize * c.Dim)
	}
	return w
}

// tinyConfig is a small LLaMA with grouped-query attention.
func tinyConfig() model.Config {
	return model.Config{Dim: 16, HiddenDim: 40, Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 4, VocabSize: 50, MaxSeqLen: 32, NormEps: 1e-5, RopeTheta: 10000}
}

// smolLMConfig is HuggingFaceTB/SmolLM-135M's shape (fixtures README).
func smolLMConfig() model.Config {
	return model.Config{Dim: 576, HiddenDim: 1536, Layers: 30, Heads: 9, KVHeads: 3, HeadDim: 64, VocabSize: 49152, MaxSeqLen: 2048, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true}
}

// randomize gives every pair of a non-zero random A and B, so that deltas
// are not trivially zero.
func randomize(a *Adapter, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 2))
	for _, name := range a.Modules() {
		p, _ := a.Pair(name)
		for i := range p.A {
			p.A[i] = float32(rng.NormFloat64() * 0.1)
		}
		for i := range p.B {
			p.B[i] = float32(rng.NormFloat64() * 0.1)
		}
	}
}

func mustNew(t testing.TB, base *model.Weights, cfg Config, seed uint64) *Adapter {
	t.Helper()
	a, err := New(base, cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
