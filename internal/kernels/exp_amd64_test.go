//go:build amd64

package kernels

import (
	"math"
	"testing"
)

// TestExpShiftedAVX512MatchesScalar: the vector exponential agrees with the
// scalar one to within rounding (the scalar rounds k·ln2Hi-free products the
// same way; FMA changes the last bit at most), tails included.
func TestExpShiftedAVX512MatchesScalar(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 on this CPU")
	}
	for _, n := range []int{16, 17, 31, 32000} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(40 * math.Sin(float64(i)*0.77))
		}
		want := make([]float32, n)
		got := make([]float32, n)
		ws := expShiftedScalar(want, x, 40)
		gs := expShiftedAVX512(got, x, 40)
		for i := range x {
			if d := math.Abs(float64(got[i]-want[i])) / math.Max(float64(want[i]), 1e-30); d > 2.5e-7 {
				t.Fatalf("n %d element %d: %v, scalar %v", n, i, got[i], want[i])
			}
		}
		if math.Abs(gs-ws) > 1e-6*ws {
			t.Errorf("n %d: sum %v, scalar %v", n, gs, ws)
		}
	}
}

// TestRowMaxAndScaleAVX512MatchScalar: the vector maximum and scaling give
// the scalar code's bits, tails included.
func TestRowMaxAndScaleAVX512MatchScalar(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 on this CPU")
	}
	for _, n := range []int{16, 17, 31, 32, 48, 63, 32000} {
		for _, at := range []int{0, n / 3, n - 1} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(40 * math.Sin(float64(i)*0.77))
			}
			x[at] = 1000
			if got, want := rowMax(x), rowMaxScalar(x); got != want {
				t.Errorf("n %d max at %d: rowMax %v, scalar %v", n, at, got, want)
			}
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(math.Cos(float64(i)))
		}
		want := append([]float32(nil), x...)
		scaleFloatsScalar(want, 0.37)
		scaleFloats(x, 0.37)
		for i := range x {
			if x[i] != want[i] {
				t.Fatalf("n %d: scaled element %d is %v, scalar %v", n, i, x[i], want[i])
			}
		}
	}
}
