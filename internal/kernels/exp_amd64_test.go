//go:build amd64

package kernels

import (
	"math"
	"testing"
)

// expVector names the vector exponentials this CPU runs, each on whole
// rows.
func expVector() map[string]func(dst, x []float32, m float32) float64 {
	fns := map[string]func(dst, x []float32, m float32) float64{}
	if useAVX512 {
		fns["avx512"] = expShiftedAVX512
	}
	if useAVX2 {
		fns["avx2"] = expShiftedAVX2
	}
	return fns
}

// TestExpShiftedVectorMatchesScalar: each vector exponential agrees with
// the scalar one to within rounding (the scalar rounds k·ln2Hi-free
// products the same way; FMA changes the last bit at most), tails and
// AVX2's call boundaries (expChunk) included, in place or not. AVX2 writes
// nothing past the row and sums each element once: its last group of 8
// overlaps the one before, and below 8 elements its masked lanes would
// overflow (x − m > 88 for the zeros a masked load gives).
func TestExpShiftedVectorMatchesScalar(t *testing.T) {
	fns := expVector()
	if len(fns) == 0 {
		t.Skip("no vector exponential on this CPU")
	}
	for name, fn := range fns {
		ns := []int{32000, expChunk, expChunk + 5, expChunk + 13, 2*expChunk + 8}
		for n := 1; n <= 40; n++ {
			ns = append(ns, n)
		}
		for _, n := range ns {
			for _, m := range []float32{40, -50} {
				x := make([]float32, n)
				for i := range x {
					x[i] = float32(40*math.Sin(float64(i)*0.77)) + m - 40
				}
				want := make([]float32, n)
				ws := expShiftedScalar(want, x, m)
				const guard = 9
				buf := make([]float32, n+guard)
				for i := range buf {
					buf[i] = -1
				}
				gs := fn(buf[:n], x, m)
				inPlace := append([]float32(nil), x...)
				is := fn(inPlace, inPlace, m)
				for i := range x {
					for _, got := range []float32{buf[i], inPlace[i]} {
						if d := math.Abs(float64(got-want[i])) / math.Max(float64(want[i]), 1e-30); d > 2.5e-7 {
							t.Fatalf("%s n %d m %v element %d: %v, scalar %v", name, n, m, i, got, want[i])
						}
					}
				}
				for i, v := range buf[n:] {
					if v != -1 {
						t.Fatalf("%s n %d m %v: wrote %v at n+%d", name, n, m, v, i)
					}
				}
				if math.Abs(gs-ws) > 1e-6*ws || math.Abs(is-ws) > 1e-6*ws {
					t.Errorf("%s n %d m %v: sum %v (in place %v), scalar %v", name, n, m, gs, is, ws)
				}
			}
		}
	}
}

// TestRowMaxAndScaleVectorMatchScalar: the vector maximum and scaling give
// the scalar code's bits, tails included.
func TestRowMaxAndScaleVectorMatchScalar(t *testing.T) {
	if !useAVX2 {
		t.Skip("no vector kernels on this CPU")
	}
	ns := []int{100, 32000}
	for n := 1; n <= 72; n++ {
		ns = append(ns, n)
	}
	for _, n := range ns {
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
		x := make([]float32, n+9)
		for i := range x {
			x[i] = float32(math.Cos(float64(i)))
		}
		x = x[:n]
		want := append([]float32(nil), x...)
		scaleFloatsScalar(want, 0.37)
		scaleFloats(x, 0.37)
		for i := range x {
			if x[i] != want[i] {
				t.Fatalf("n %d: scaled element %d is %v, scalar %v", n, i, x[i], want[i])
			}
		}
		for i, v := range x[n : n+9] {
			if v != float32(math.Cos(float64(n+i))) {
				t.Fatalf("n %d: scaling wrote %v at n+%d", n, v, i)
			}
		}
	}
}
