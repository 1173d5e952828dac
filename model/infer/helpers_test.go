package infer

import (
	"math/rand/v2"
)

// genRandomSlice returns n values drawn from N(0, scale²).
func genRandomSlice(rng *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64() * scale)
	}
	return s
}

// naiveDenseMulT is the textbook triple loop y = x·wᵀ, the reference the
// generator's products are checked against.
func naiveDenseMulT(y, x, w []float32, n, in, out int) {
	for r := range n {
		for o := range out {
			var s float32
			for k := range in {
				s += x[r*in+k] * w[o*in+k]
			}
			y[r*out+o] = s
		}
	}
}
