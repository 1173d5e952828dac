// Package blas selects the BLAS implementation that golora's kernels and
// gorgonia run on, at build time.
//
// The default build needs no cgo: its Sgemm is golora's own (internal/gemm,
// Go assembly for AVX-512 or AVX2 chosen at run time, pure Go elsewhere) and
// the other routines are gonum's pure Go (gonum.org/v1/gonum/blas/gonum).
// Building with the tag openblas links OpenBLAS through cgo
// (gonum.org/v1/netlib) instead:
//
//	apt-get install -y libopenblas-dev pkg-config
//	go test -tags openblas ./model/
//
// The library is found with pkg-config (package openblas); set
// PKG_CONFIG_PATH for an OpenBLAS installed elsewhere. Either build hands its
// implementation to gorgonia (gorgonia.Use), so gorgonia's products run on it
// too.
//
// OpenBLAS is put in single-threaded mode: its idle worker threads spin
// between calls and would steal the cores from the Go code that runs between
// matrix products (softmax, normalization, dequantization). ParallelSgemm
// spreads a large product over goroutines instead.
package blas

import (
	"github.com/golora/golora/internal/parallel"
	"runtime"

	"gonum.org/v1/gonum/blas"
)

// Full is the set of BLAS routines gorgonia's Use accepts.
type Full interface {
	blas.Float32
	blas.Float64
	blas.Complex64
	blas.Complex128
}

// Implementation returns the BLAS this build uses.
func Implementation() Full { return impl }

// Name names the BLAS this build uses ("gemm" or "openblas"), for logs and
// benchmark names.
func Name() string { return name }

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major float32 matrices,
// where op(X) is X or Xᵀ as transA and transB say; op(A) is m×k, op(B) is k×n
// and C is m×n, with leading dimensions lda, ldb and ldc. When beta is 0, C is
// overwritten without being read. The slices may start anywhere inside a larger
// matrix, so a block of columns is passed as a slice starting at its first
// element together with the full matrix's leading dimension.
//
// Sgemm is one BLAS call: single-threaded with OpenBLAS, spread over the
// available CPUs by internal/gemm in the default build. Calls may run
// concurrently.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	impl.Sgemm(transpose(transA), transpose(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// parallelMinRows and parallelMinWork keep ParallelSgemm from splitting
// products too small to amortize starting goroutines (about 1 µs each against
// 2·m·n·k flops at tens of GFLOP/s).
const (
	parallelMinRows = 32
	parallelMinWork = 1 << 21 // m·n·k
)

// ParallelSgemm is Sgemm using every available CPU: with a single-threaded
// BLAS (OpenBLAS here) the rows of C are split among GOMAXPROCS goroutines,
// each making its own BLAS call; internal/gemm parallelizes by itself, so in
// the default build ParallelSgemm is Sgemm.
func ParallelSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if !singleThreaded || runtime.GOMAXPROCS(0) < 2 || m < 2*parallelMinRows || m*n*k < parallelMinWork {
		Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	parallel.For(m, parallelMinRows, 1, func(lo, hi int) {
		// Row i of op(A) starts at a[i·lda] when A is stored as is, and at
		// a[i] (a column of the stored k×m matrix) when transposed.
		aOff := lo * lda
		if transA {
			aOff = lo
		}
		Sgemm(transA, transB, hi-lo, n, k, alpha, a[aOff:], lda, b, ldb, beta, c[lo*ldc:], ldc)
	})
}

func transpose(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}
