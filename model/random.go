package model

import (
	"math"
	"math/rand/v2"
)

// RandomWeights returns weights of shape cfg drawn from a fixed seed at the
// scale of a freshly initialized LLaMA: linears from N(0, 0.02²·768/In),
// the embedding from N(0, 1), norms near 1 so that they matter, and small
// q/k/v biases and q/k norms when cfg asks for them. The same cfg and seed
// give the same weights. They are for benchmarks, load tests and examples
// that need a model of a real shape without a checkpoint, not a starting
// point for training.
func RandomWeights(cfg Config, seed uint64) *Weights {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	vec := func(n int, scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return v
	}
	norm := func(n int) []float32 {
		v := vec(n, 0.1)
		for i := range v {
			v[i]++
		}
		return v
	}
	fill := func(lin *Linear) { lin.Dense = vec(lin.Out*lin.In, 0.02*math.Sqrt(768/float64(lin.In))) }
	w := NewWeights(cfg)
	w.Embedding = vec(cfg.VocabSize*cfg.Dim, 1)
	w.Norm = norm(cfg.Dim)
	for l := range w.Layers {
		layer := &w.Layers[l]
		layer.AttnNorm, layer.MLPNorm = norm(cfg.Dim), norm(cfg.Dim)
		for _, nl := range layer.Linears() {
			fill(*nl.Linear)
		}
		if cfg.QKVBias {
			for _, lin := range []*Linear{layer.Q, layer.K, layer.V} {
				lin.Bias = vec(lin.Out, 0.02)
			}
		}
		if cfg.QKNorm {
			layer.QNorm, layer.KNorm = norm(cfg.HeadDim), norm(cfg.HeadDim)
		}
	}
	if cfg.TiedOutput {
		w.Output.Dense = w.Embedding
	} else {
		fill(w.Output)
	}
	return w
}
