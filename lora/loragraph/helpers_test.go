package loragraph

import (
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
)

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
