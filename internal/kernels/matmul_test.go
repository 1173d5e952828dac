package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	gonumblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/golora/golora/internal/blas"
)

// naiveDenseMulT is the textbook triple loop, the baseline for DenseMulT.
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

// sgemmDenseMulT always uses Sgemm, the other choice DenseMulT has.
func sgemmDenseMulT(y, x, w []float32, n, in, out int) {
	blas.Sgemm(false, true, n, out, in, 1, x, in, w, in, 0, y, out)
}

// sgemvDenseMulT is the single-row product on gonum's Sgemv row by row,
// what DenseMulT ran before its AVX-512 kernel.
func sgemvDenseMulT(y, x, w []float32, n, in, out int) {
	var impl gonum.Implementation
	for r := range n {
		impl.Sgemv(gonumblas.NoTrans, out, in, 1, w, in, x[r*in:], 1, 0, y[r*out:], 1)
	}
}

// genRandomSlice returns n values drawn from N(0, scale²).
func genRandomSlice(rng *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64() * scale)
	}
	return s
}

func TestDenseMulT(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// n = 1 takes the matrix-vector kernel (four rows at a time, 16 or 32
	// columns per step), n > 1 the batched path; odd sizes check that no
	// remainder of rows or columns is dropped.
	for _, s := range []struct{ n, in, out int }{
		{1, 1, 1}, {1, 7, 5}, {2, 8, 4}, {3, 9, 7}, {1, 64, 64}, {5, 33, 10}, {8, 288, 768}, {1, 172, 64}, {3, 7, 5000},
		{1, 16, 4}, {1, 17, 7}, {1, 48, 9}, {1, 288, 771}, {1, 2047, 6},
		// Rows read one after the other (AVX2) with an 8-column tail,
		// reading past the cache, and rows read side by side.
		{1, 296, 14200}, {1, 2056, 9},
	} {
		x := genRandomSlice(rng, s.n*s.in, 1)
		w := genRandomSlice(rng, s.out*s.in, 1)
		y := make([]float32, s.n*s.out)
		for i := range y {
			y[i] = float32(math.NaN()) // must be overwritten, not accumulated into
		}
		DenseMulT(y, x, w, s.n, s.in, s.out)
		for r := range s.n {
			for o := range s.out {
				var want float64
				for k := range s.in {
					want += float64(x[r*s.in+k]) * float64(w[o*s.in+k])
				}
				got := y[r*s.out+o]
				// float32 accumulation of s.in products of unit variance:
				// the rounding error grows like sqrt(in)·2⁻²⁴·|terms|.
				tol := 4e-6 * math.Sqrt(float64(s.in)) * 4
				if !(math.Abs(float64(got)-want) <= tol) {
					t.Fatalf("n=%d in=%d out=%d: y[%d,%d] = %v, want %v", s.n, s.in, s.out, r, o, got, want)
				}
			}
		}
	}
}

// BenchmarkDenseMulT compares DenseMulT with the naive triple loop and with
// Sgemm alone on the shapes of a stories15M MLP: the decode step (n = 1) and
// a prefill batch (n = 64). GFLOP/s counts a multiply-add as two operations.
func BenchmarkDenseMulT(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 64} {
		for _, sh := range []struct{ in, out int }{{288, 768}, {768, 288}} {
			x := genRandomSlice(rng, n*sh.in, 1)
			w := genRandomSlice(rng, sh.out*sh.in, 1)
			y := make([]float32, n*sh.out)
			for _, k := range []struct {
				name string
				f    func(y, x, w []float32, n, in, out int)
			}{{"naive", naiveDenseMulT}, {"sgemm", sgemmDenseMulT}, {"gonum-sgemv", sgemvDenseMulT}, {"DenseMulT", DenseMulT}} {
				b.Run(fmt.Sprintf("n=%d/%dx%d/%s/%s", n, sh.out, sh.in, blas.Name(), k.name), func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						k.f(y, x, w, n, sh.in, sh.out)
					}
					flops := 2 * float64(n*sh.in*sh.out) * float64(b.N)
					b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}
