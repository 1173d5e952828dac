package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// swigluScalar is SwiGLU in scalar code alone: the sigmoids, then
// gate·σ(gate)·up element by element.
func swigluScalar(dst, gate, up []float32) {
	s := make([]float32, len(gate))
	sigmoids(s, gate)
	for i := range gate {
		dst[i] = gate[i] * s[i] * up[i]
	}
}

// TestSwiGLUVectorMatchesScalar checks SwiGLU, whose steps run 16 lanes at
// a time on AVX-512 and 8 on AVX2, against the scalar code bit for bit, in
// place and not, for lengths around the 8- and 16-lane groups and SwiGLU's
// chunks, with gates of both signs, zeros and large magnitudes.
func TestSwiGLUVectorMatchesScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 24, 33, 384, 768, 1023, 1024, 1030, 2100} {
		gate, up := make([]float32, n), make([]float32, n)
		for i := range gate {
			gate[i] = float32(rng.NormFloat64() * 4)
			up[i] = float32(rng.NormFloat64())
		}
		if n > 3 {
			gate[0], gate[1], gate[2] = 0, -100, 100
		}
		want := make([]float32, n)
		swigluScalar(want, gate, up)
		got := make([]float32, n)
		SwiGLU(got, gate, up)
		inPlace := append([]float32(nil), gate...)
		SwiGLU(inPlace, inPlace, up)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) || math.Float32bits(inPlace[i]) != math.Float32bits(want[i]) {
				t.Fatalf("n=%d: element %d (gate %g, up %g) = %g, in place %g; the scalar code gives %g", n, i, gate[i], up[i], got[i], inPlace[i], want[i])
			}
		}
	}
}

// BenchmarkSwiGLU compares SwiGLU with the scalar code on the slices a
// 32-row Batch step gates per part (384 elements of a 768-wide MLP).
func BenchmarkSwiGLU(b *testing.B) {
	const n = 384
	gate, up, dst := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range gate {
		gate[i] = float32(i%37) - 18
		up[i] = 1
	}
	b.Run("scalar", func(b *testing.B) {
		for b.Loop() {
			swigluScalar(dst, gate, up)
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
	})
	b.Run("SwiGLU", func(b *testing.B) {
		for b.Loop() {
			SwiGLU(dst, gate, up)
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
	})
}
