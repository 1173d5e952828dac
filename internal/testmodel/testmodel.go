// Package testmodel builds random models and values and compares float
// results for the tests of the packages above package model (graph, LoRA,
// training). It is imported by tests only.
package testmodel

import (
	"math"
	"math/rand/v2"

	"github.com/golora/golora/model"
)

// Synthetic builds a random model of shape c from rng. Projections get
// variance 1/In (q and k 4/In, so attention is far from uniform), norms
// 1 ± 0.2 and the embedding unit variance, so that every layer changes the
// residual stream noticeably (N(0, 0.02) weights would leave the gradients
// with respect to early layers too small for finite differences). Every
// value passes through round (nil: none), e.g. a rounding to BF16. A tied
// head aliases the embedding.
func Synthetic(c model.Config, rng *rand.Rand, round func(float32) float32) *model.Weights {
	fill := func(n int, std, mean float64) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(mean + std*rng.NormFloat64())
			if round != nil {
				out[i] = round(out[i])
			}
		}
		return out
	}
	linear := func(lin *model.Linear, gain float64) {
		lin.Dense = fill(lin.Out*lin.In, gain/math.Sqrt(float64(lin.In)), 0)
	}
	w := model.NewWeights(c)
	w.Embedding, w.Norm = fill(c.VocabSize*c.Dim, 1, 0), fill(c.Dim, 0.2, 1)
	for l := range w.Layers {
		layer := &w.Layers[l]
		layer.AttnNorm = fill(c.Dim, 0.2, 1)
		linear(layer.Q, 2)
		linear(layer.K, 2)
		linear(layer.V, 1)
		linear(layer.O, 1)
		layer.MLPNorm = fill(c.Dim, 0.2, 1)
		linear(layer.Gate, 1)
		linear(layer.Up, 1)
		linear(layer.Down, 1)
	}
	if c.TiedOutput {
		w.Output.Dense = w.Embedding
	} else {
		linear(w.Output, 1)
	}
	return w
}

// Normals returns n values drawn from N(0, std²) by rng.
func Normals(rng *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * std)
	}
	return v
}

// SameBits reports whether a and b hold the same float32 values bit for bit
// (so NaNs with equal bits match and 0 differs from −0).
func SameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
