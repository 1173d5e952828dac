package kernels

// expShifted writes e^(x[i] − m) into dst[i] for every i and returns their
// sum; m must be at least max(x), so every exponent is ≤ 0. dst may be x.
// Exponents below −87 are raised to −87: their results, under 1.6e-38 (the
// bottom of float32's normal range), are noise next to the maximum's 1.
// Each result is within about one ulp of the exact value.
func expShifted(dst, x []float32, m float32) float64 {
	switch {
	case useAVX512 && len(x) >= 16:
		return expShiftedAVX512(dst, x, m)
	case useAVX2 && len(x) >= expMinAVX2:
		return expShiftedAVX2(dst, x, m)
	}
	return expShiftedScalar(dst, x, m)
}

// expMinAVX2 is the shortest row the AVX2 exponential takes (rows too short
// for AVX-512's too): below it the scalar code is as fast as the call.
const expMinAVX2 = 4

// expChunk is the number of elements one call of the AVX2 exponential
// takes, a few microseconds' work (assembly is not preemptible; a row of
// logits can have 150,000).
const expChunk = 8192

// expShiftedAVX2 runs expShifted in AVX2 on all of x, expChunk elements a
// call. Its results have the bits of the
// AVX-512 code's.
func expShiftedAVX2(dst, x []float32, m float32) float64 {
	dst = dst[:len(x)]
	var sum float64
	for lo := 0; lo < len(x); lo += expChunk {
		n := min(expChunk, len(x)-lo)
		sum += expBlocksAVX2(&dst[lo], &x[lo], n, m)
	}
	return sum
}

// expShiftedAVX512 runs the assembly on the whole groups of 16 and the
// scalar code on the rest.
func expShiftedAVX512(dst, x []float32, m float32) float64 {
	dst = dst[:len(x)]
	n := len(x) &^ 15
	sum := expBlocksAVX512(&dst[0], &x[0], n, m)
	return sum + expShiftedScalar(dst[n:], x[n:], m)
}

// expBlocksAVX512 is expNear0's method on 16 lanes for the first n elements
// (a multiple of 16) of x, written to dst; it returns their sum, accumulated
// in float64 lanes. The range reduction uses fused multiply-adds (exact for
// k·ln2Hi) and VSCALEFPS applies 2^k.
//
//go:noescape
func expBlocksAVX512(dst, x *float32, n int, m float32) float64

// expBlocksAVX2 is expBlocksAVX512 with AVX2 for any n > 0: whole groups
// of 8, then the rest as part of the last 8 (n ≥ 8) or by masked loads and
// stores (n < 8). 2^k is applied by a product instead of VSCALEFPS, with
// the same result.
//
//go:noescape
func expBlocksAVX2(dst, x *float32, n int, m float32) float64

// rowMax returns the largest element of a non-empty x.
func rowMax(x []float32) float32 {
	switch {
	case useAVX512 && len(x) >= 16:
		return rowMaxAVX512(x)
	case useAVX2 && len(x) >= 8:
		return maxBlocksAVX2(&x[0], len(x))
	}
	return rowMaxScalar(x)
}

// rowMaxAVX512 runs the assembly on the whole groups of 16 and the scalar
// code on the rest.
func rowMaxAVX512(x []float32) float32 {
	n := len(x) &^ 15
	m := maxBlocksAVX512(&x[0], n)
	if n < len(x) {
		m = max(m, rowMaxScalar(x[n:]))
	}
	return m
}

// scaleFloats multiplies every element of x by k.
func scaleFloats(x []float32, k float32) {
	switch {
	case useAVX512 && len(x) >= 16:
		n := len(x) &^ 15
		scaleBlocksAVX512(&x[0], n, k)
		scaleFloatsScalar(x[n:], k)
	case useAVX2 && len(x) >= scaleMinAVX2:
		scaleBlocksAVX2(&x[0], len(x), k)
	default:
		scaleFloatsScalar(x, k)
	}
}

// scaleMinAVX2 is the shortest row scaleFloats scales in AVX2: the scalar
// loop, a few nanoseconds for 32 elements, is faster than the call below
// it.
const scaleMinAVX2 = 48

// maxBlocksAVX512 returns the largest of the first n elements of x, n a
// positive multiple of 16.
//
//go:noescape
func maxBlocksAVX512(x *float32, n int) float32

// scaleBlocksAVX512 multiplies the first n elements of x, n a multiple of
// 16, by k.
//
//go:noescape
func scaleBlocksAVX512(x *float32, n int, k float32)

// maxBlocksAVX2 returns the largest of the first n elements of x, n ≥ 8
// (any such n: the last 8 are read overlapping the others).
//
//go:noescape
func maxBlocksAVX2(x *float32, n int) float32

// scaleBlocksAVX2 multiplies the first n elements of x, n ≥ 8, by k (the
// last n mod 8 as part of the last 8, read before any is written).
//
//go:noescape
func scaleBlocksAVX2(x *float32, n int, k float32)
