package model

import (
	"math"

	"github.com/golora/golora/internal/blas"
	gonumblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// denseMulT computes y = x·wᵀ for n rows: x is [n, in], w is [out, in] and y is
// [n, out], all row-major; y is overwritten. Callers check the lengths.
//
// The choices are measured (BenchmarkDenseMulT, BenchmarkGenerateDecode,
// BenchmarkGeneratePrefill): a single row (the decode step) runs on gonum's
// Sgemv in every build, which does not allocate and uses SIMD dot products;
// OpenBLAS's Sgemv is as fast alone but halves decode speed on two cores,
// its threads competing with the Go code between calls. For a batch of rows
// (a prefill) OpenBLAS's Sgemm is several times faster than anything else,
// but gonum's Sgemm is no faster than its Sgemv called row by row and
// allocates, so the pure-Go build runs Sgemv over blocks of weight rows
// small enough to stay in cache while every row of x passes.
func denseMulT(y, x, w []float32, n, in, out int) {
	var gemv gonum.Implementation
	if n == 1 {
		gemv.Sgemv(gonumblas.NoTrans, out, in, 1, w, in, x, 1, 0, y, 1)
		return
	}
	if blas.Name() == "openblas" {
		blas.Sgemm(false, true, n, out, in, 1, x, in, w, in, 0, y, out)
		return
	}
	// 16K float32 (64 KiB) of weights per block.
	block := max(4, (16<<10)/in)
	for o := 0; o < out; o += block {
		rows := min(block, out-o)
		for r := range n {
			gemv.Sgemv(gonumblas.NoTrans, rows, in, 1, w[o*in:], in, x[r*in:], 1, 0, y[r*out+o:], 1)
		}
	}
}

// dotF32 returns the dot product of a and b[:len(a)]. Attention calls it on
// single heads (a few dozen elements), too short to amortize a BLAS call.
func dotF32(a, b []float32) float32 {
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

// expF32 returns e^x for x ≤ 0 with a relative error below 3e-7, about
// float32 rounding; results below the smallest normal float32 (x < −87.3)
// are 0. Attention calls it for every cached position of every head, where
// math.Exp's float64 precision costs more than the rest of the softmax.
func expF32(x float32) float32 {
	const (
		log2e = 1.4426950408889634
		// ln 2 split in two so that k·ln2Hi is exact for |k| < 2⁸.
		ln2Hi = 0.693145751953125
		ln2Lo = 1.4286068203094173e-06
	)
	if x < -87.3 {
		return 0
	}
	// x = k·ln 2 + r with |r| ≤ ln 2/2 (k rounded half down), then
	// e^x = 2^k · e^r with e^r from its Taylor series to degree 6, whose
	// remainder r⁷/7! is below 1.2e-7 there.
	k := int32(x*log2e - 0.5)
	kf := float32(k)
	r := x - kf*ln2Hi - kf*ln2Lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	return p * math.Float32frombits(uint32(k+127)<<23)
}
