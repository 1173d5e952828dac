package kernels

import (
	"github.com/golora/golora/internal/blas"
	gonumblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// DenseMulT computes y = x·wᵀ for n rows: x is [n, in], w is [out, in] and y is
// [n, out], all row-major; y is overwritten. Callers check the lengths.
//
// A batch of rows (a prefill) is one Sgemm: internal/gemm in the default
// build (spread over the CPUs), OpenBLAS with the tag openblas. A single row
// (the decode step) is a matrix-vector product, bound by reading w once, on
// the calling goroutine without allocating: AVX-512 or AVX2 assembly four
// rows of w at a time where the CPU has it, else gonum's Sgemv (OpenBLAS's
// Sgemv is as fast alone but halves decode speed on two cores, its threads
// competing with the Go code between calls). A caller that wants a large
// single row on several cores splits w by rows itself (model/infer does,
// with workers of its own).
func DenseMulT(y, x, w []float32, n, in, out int) {
	if n > 1 {
		blas.Sgemm(false, true, n, out, in, 1, x, in, w, in, 0, y, out)
		return
	}
	if gemv(y, x, w, out, in) {
		return
	}
	var impl gonum.Implementation
	impl.Sgemv(gonumblas.NoTrans, out, in, 1, w, in, x, 1, 0, y, 1)
}

// Dot returns the dot product of a and b[:len(a)] in float32, with four
// partial sums in a fixed order (so its result does not depend on the CPU).
// Attention calls it on single heads (a few dozen elements), too short to
// amortize a BLAS call; quantized formats' scalar paths and serving's small
// adapter products use it too.
func Dot(a, b []float32) float32 {
	b = b[:len(a)]
	// Four accumulators break the dependency chain of additions.
	var s0, s1, s2, s3 float32
	k := 0
	for ; k+4 <= len(a); k += 4 {
		s0 += a[k] * b[k]
		s1 += a[k+1] * b[k+1]
		s2 += a[k+2] * b[k+2]
		s3 += a[k+3] * b[k+3]
	}
	for ; k < len(a); k++ {
		s0 += a[k] * b[k]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpyF32 computes y += a·x for y of len(x).
func axpyF32(a float32, x, y []float32) {
	y = y[:len(x)]
	for k, v := range x {
		y[k] += a * v
	}
}

// Add computes y += x for y of len(x).
func Add(y, x []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += v
	}
}

// AddBias adds bias to every row of len(bias) values of y.
func AddBias(y, bias []float32) {
	for off := 0; off+len(bias) <= len(y); off += len(bias) {
		Add(y[off:off+len(bias)], bias)
	}
}
