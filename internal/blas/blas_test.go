package blas

import (
	"math"
	"testing"
)

// naiveGemm is the textbook triple loop, in float64, used as the reference.
func naiveGemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			out[i*n+j] = float64(alpha)*s + float64(beta)*float64(c[i*ldc+j])
		}
	}
	return out
}

type gemmFunc func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

func TestSgemmMatchesNaive(t *testing.T) {
	t.Logf("BLAS: %s", Name())
	for _, tc := range []struct {
		name    string
		f       gemmFunc
		m, n, k int
	}{
		{"Sgemm", Sgemm, 7, 5, 9},
		// Large enough for ParallelSgemm to split the rows of C.
		{"ParallelSgemm", ParallelSgemm, 97, 200, 130},
	} {
		checkGemm(t, tc.name, tc.f, tc.m, tc.n, tc.k)
	}
}

func checkGemm(t *testing.T, name string, f gemmFunc, m, n, k int) {
	// Leading dimensions larger than the logical widths check that blocks of
	// columns inside wider matrices are addressed correctly.
	const pad = 3
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			ar, ac := m, k
			if ta {
				ar, ac = k, m
			}
			br, bc := k, n
			if tb {
				br, bc = n, k
			}
			lda, ldb, ldc := ac+pad, bc+pad, n+pad
			a := make([]float32, ar*lda)
			b := make([]float32, br*ldb)
			c := make([]float32, m*ldc)
			for i := range a {
				a[i] = float32(math.Sin(float64(i)))
			}
			for i := range b {
				b[i] = float32(math.Cos(float64(3 * i)))
			}
			for i := range c {
				c[i] = float32(i%5) - 2
			}
			want := naiveGemm(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 2, c, ldc)
			f(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 2, c, ldc)
			for i := range m {
				for j := range n {
					if d := math.Abs(float64(c[i*ldc+j]) - want[i*n+j]); d > 1e-3 {
						t.Fatalf("%s transA=%v transB=%v: C[%d,%d] = %v, want %v", name, ta, tb, i, j, c[i*ldc+j], want[i*n+j])
					}
				}
				for j := n; j < ldc; j++ {
					if c[i*ldc+j] != float32((i*ldc+j)%5)-2 {
						t.Fatalf("%s transA=%v transB=%v: padding C[%d,%d] was written", name, ta, tb, i, j)
					}
				}
			}
		}
	}
}
