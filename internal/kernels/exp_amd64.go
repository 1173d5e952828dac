package kernels

// expShifted writes e^(x[i] − m) into dst[i] for every i and returns their
// sum; m must be at least max(x), so every exponent is ≤ 0. dst may be x.
// Exponents below −87 are raised to −87: their results, under 1.6e-38 (the
// bottom of float32's normal range), are noise next to the maximum's 1.
// Each result is within about one ulp of the exact value.
func expShifted(dst, x []float32, m float32) float64 {
	if !useAVX512 || len(x) < 16 {
		return expShiftedScalar(dst, x, m)
	}
	return expShiftedAVX512(dst, x, m)
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

// rowMax returns the largest element of a non-empty x.
func rowMax(x []float32) float32 {
	if !useAVX512 || len(x) < 16 {
		return rowMaxScalar(x)
	}
	n := len(x) &^ 15
	m := maxBlocksAVX512(&x[0], n)
	if n < len(x) {
		m = max(m, rowMaxScalar(x[n:]))
	}
	return m
}

// scaleFloats multiplies every element of x by k.
func scaleFloats(x []float32, k float32) {
	if !useAVX512 || len(x) < 16 {
		scaleFloatsScalar(x, k)
		return
	}
	n := len(x) &^ 15
	scaleBlocksAVX512(&x[0], n, k)
	scaleFloatsScalar(x[n:], k)
}

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
