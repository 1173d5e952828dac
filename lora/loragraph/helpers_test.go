package loragraph

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
)

// normals returns n values drawn from N(0, std²) by rng.
func normals(rng *rand.Rand, n int, std float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * std)
	}
	return v
}

// randomize gives every pair of a non-zero random A and B, so that deltas
// are not trivially zero.
func randomize(a *lora.Adapter, seed uint64) {
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

func mustNew(t testing.TB, base *model.Weights, cfg lora.Config, seed uint64) *lora.Adapter {
	t.Helper()
	a, err := lora.New(base, cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sameBits(a, b []float32) bool {
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
