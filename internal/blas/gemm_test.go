//go:build !openblas

package blas

import (
	"math"
	"testing"

	"github.com/golora/golora/internal/gemm"
	gonumblas "gonum.org/v1/gonum/blas"
	"gorgonia.org/gorgonia"
)

// TestDefaultBuildRoutesSgemm: in the default build the BLAS handed out, and
// the one gorgonia uses, multiply with internal/gemm: same bits as calling it
// directly, and beta 0 does not let NaNs in C through.
func TestDefaultBuildRoutesSgemm(t *testing.T) {
	if _, ok := gorgonia.WhichBLAS().(gemmBLAS); !ok {
		t.Fatalf("gorgonia uses %T, want gemmBLAS", gorgonia.WhichBLAS())
	}
	const m, n, k = 70, 90, 300
	a, b := make([]float32, k*m), make([]float32, n*k)
	for i := range a {
		a[i] = float32(math.Sin(float64(i)))
	}
	for i := range b {
		b[i] = float32(math.Cos(float64(i)))
	}
	want := make([]float32, m*n)
	gemm.Sgemm(true, true, m, n, k, 1.5, a, m, b, k, 0, want, n)
	for _, f := range []func(c []float32){
		func(c []float32) {
			Implementation().Sgemm(gonumblas.Trans, gonumblas.ConjTrans, m, n, k, 1.5, a, m, b, k, 0, c, n)
		},
		func(c []float32) { Sgemm(true, true, m, n, k, 1.5, a, m, b, k, 0, c, n) },
		func(c []float32) { ParallelSgemm(true, true, m, n, k, 1.5, a, m, b, k, 0, c, n) },
	} {
		c := make([]float32, m*n)
		for i := range c {
			c[i] = float32(math.NaN())
		}
		f(c)
		for i := range c {
			if math.Float32bits(c[i]) != math.Float32bits(want[i]) {
				t.Fatalf("C[%d] = %v, internal/gemm gives %v", i, c[i], want[i])
			}
		}
	}
}
