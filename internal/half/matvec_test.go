package half

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/internal/cpu"
)

// randomHalf returns n random finite 16-bit values (BF16 or F16) of about
// unit size, and the float32 vector x of cols values.
func randomHalf(rng *rand.Rand, f16 bool, n int) []uint16 {
	w := make([]uint16, n)
	for i := range w {
		v := float32(rng.NormFloat64())
		if f16 {
			w[i] = Float32ToF16(v)
		} else {
			w[i] = Float32ToBF16(v)
		}
	}
	return w
}

// TestMatVecLevels runs the matrix-vector product at every level up to
// cpu.Best() on shapes with and without a row remainder (rows mod 4) and a
// column remainder (cols mod 16), and checks the bits against dotRow, the
// pure-Go definition, and the values against a float64 product.
func TestMatVecLevels(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 16))
	for _, f16 := range []bool{false, true} {
		for _, shape := range [][2]int{{1, 1}, {3, 15}, {4, 16}, {5, 17}, {8, 32}, {7, 47}, {13, 288}, {9, 300}, {64, 768}, {6, 2051}, {6, 80}, {5, 112}} {
			rows, cols := shape[0], shape[1]
			w := randomHalf(rng, f16, rows*cols)
			x := make([]float32, cols)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			want := make([]float32, rows)
			for r := range want {
				want[r] = dotRow(f16, x, w[r*cols:(r+1)*cols])
				var exact float64
				for k, v := range x {
					exact += float64(v) * float64(widen16(f16, w[r*cols+k]))
				}
				if d := math.Abs(float64(want[r]) - exact); d > 1e-5*float64(cols) {
					t.Fatalf("f16=%v [%d %d] row %d: dotRow %v, float64 %v", f16, rows, cols, r, want[r], exact)
				}
			}
			for l := cpu.Generic; l <= cpu.Best(); l++ {
				got := make([]float32, rows+1)
				got[rows] = 42 // must not be written
				matVecAt(l, f16, got[:rows], x, w)
				for r := range rows {
					if math.Float32bits(got[r]) != math.Float32bits(want[r]) {
						t.Fatalf("%v f16=%v [%d %d] row %d: got %v, want %v (dotRow)", l, f16, rows, cols, r, got[r], want[r])
					}
				}
				if got[rows] != 42 {
					t.Fatalf("%v f16=%v [%d %d]: wrote past y", l, f16, rows, cols)
				}
			}
		}
	}
}

// TestWiden checks WidenBF16 and WidenF16 against the scalar conversions on
// every 16-bit pattern.
func TestWiden(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	dst := make([]float32, len(src))
	for _, f16 := range []bool{false, true} {
		for l := cpu.Generic; l <= cpu.Best(); l++ {
			widenAt(l, f16, dst, src)
			for i, h := range src {
				if want := widen16(f16, h); math.Float32bits(dst[i]) != math.Float32bits(want) {
					t.Fatalf("%v f16=%v %#04x: got %#08x, want %#08x", l, f16, h, math.Float32bits(dst[i]), math.Float32bits(want))
				}
			}
		}
	}
}

// TestFinite16 checks FiniteBF16 and FiniteF16 against the widened value
// of every 16-bit pattern, alone and after finite values.
func TestFinite16(t *testing.T) {
	for _, f16 := range []bool{false, true} {
		for i := range 1 << 16 {
			h := uint16(i)
			v := float64(widen16(f16, h))
			want := !math.IsNaN(v) && !math.IsInf(v, 0)
			s := []uint16{0x3c00, 0xbc00, h}
			got := FiniteBF16(s)
			if f16 {
				got = FiniteF16(s)
			}
			if got != want {
				t.Fatalf("f16=%v %#04x: finite %v, want %v", f16, h, got, want)
			}
		}
	}
}

// BenchmarkMatVec compares the 16-bit product with the float32 one
// (the same weights widened) at a head's shape, in GB/s of weights read
// and weights per second.
func BenchmarkMatVec(b *testing.B) {
	const rows, cols = 32000, 288
	rng := rand.New(rand.NewPCG(1, 2))
	w := randomHalf(rng, false, rows*cols)
	x := make([]float32, cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	y := make([]float32, rows)
	for _, f16 := range []bool{false, true} {
		name := "bf16"
		if f16 {
			name = "f16"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				matVecAt(cpu.Best(), f16, y, x, w)
			}
			b.ReportMetric(float64(2*rows*cols)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
