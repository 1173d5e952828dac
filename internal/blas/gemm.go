//go:build !openblas

package blas

import (
	"fmt"

	"github.com/golora/golora/internal/gemm"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gorgonia.org/gorgonia"
)

// The default build: golora's own Sgemm (internal/gemm, Go assembly chosen
// at run time), gonum's pure Go for every other routine.
const name = "gemm"

var impl Full = gemmBLAS{}

// internal/gemm spreads a product over the CPUs itself.
const singleThreaded = false

// gemmBLAS is gonum's BLAS with Sgemm replaced by internal/gemm's.
type gemmBLAS struct{ gonum.Implementation }

// Sgemm computes C = alpha·op(A)·op(B) + beta·C with internal/gemm.
func (gemmBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemm.Sgemm(isTrans(tA), isTrans(tB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// isTrans reads a BLAS transpose flag; for real matrices the conjugate
// transpose is the transpose.
func isTrans(t blas.Transpose) bool {
	switch t {
	case blas.NoTrans:
		return false
	case blas.Trans, blas.ConjTrans:
		return true
	}
	panic(fmt.Sprintf("blas: bad transpose flag %d", t))
}

// gorgonia's matrix products (LoRA adapters and everything built from its
// operators) go through the same Sgemm as golora's kernels.
func init() { gorgonia.Use(impl) }
