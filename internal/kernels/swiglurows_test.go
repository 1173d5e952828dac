package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSwiGLUScratchMatchesSwiGLU checks SwiGLUScratch against SwiGLU bit
// for bit, in place and not, for lengths around the 16-lane groups and
// SwiGLU's chunks, with gates of both signs, zeros and large magnitudes.
func TestSwiGLUScratchMatchesSwiGLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 15, 16, 17, 33, 384, 768, 1023, 1024, 1030, 2100} {
		gate, up := make([]float32, n), make([]float32, n)
		for i := range gate {
			gate[i] = float32(rng.NormFloat64() * 4)
			up[i] = float32(rng.NormFloat64())
		}
		if n > 3 {
			gate[0], gate[1], gate[2] = 0, -100, 100
		}
		want := make([]float32, n)
		SwiGLU(want, gate, up)
		got := make([]float32, n)
		scratch := make([]float32, n)
		SwiGLUScratch(got, gate, up, scratch)
		inPlace := append([]float32(nil), gate...)
		SwiGLUScratch(inPlace, inPlace, up, scratch)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) || math.Float32bits(inPlace[i]) != math.Float32bits(want[i]) {
				t.Fatalf("n=%d: element %d (gate %g, up %g) = %g, in place %g; SwiGLU gives %g", n, i, gate[i], up[i], got[i], inPlace[i], want[i])
			}
		}
	}
}

// BenchmarkSwiGLUScratch compares SwiGLU and SwiGLUScratch on the slices a
// 32-row Batch step gates per part (384 elements of a 768-wide MLP).
func BenchmarkSwiGLUScratch(b *testing.B) {
	const n = 384
	gate, up, dst, scratch := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range gate {
		gate[i] = float32(i%37) - 18
		up[i] = 1
	}
	b.Run("SwiGLU", func(b *testing.B) {
		for b.Loop() {
			SwiGLU(dst, gate, up)
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
	})
	b.Run("SwiGLUScratch", func(b *testing.B) {
		for b.Loop() {
			SwiGLUScratch(dst, gate, up, scratch)
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
	})
}
