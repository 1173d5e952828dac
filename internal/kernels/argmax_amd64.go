package kernels

// maxVec returns the largest of the first n elements of x, n its largest
// multiple of 64, and whether they hold a NaN; n is 0 without AVX-512 or
// for fewer than 64 elements.
func maxVec(x []float32) (m float32, nan bool, n int) {
	blocks := len(x) / 64
	if !useAVX512 || blocks == 0 {
		return 0, false, 0
	}
	m, nan = maxF32AVX512(&x[0], blocks)
	return m, nan, blocks * 64
}

// indexVec returns the index of the first element equal to v among the first
// n elements of x, n its largest multiple of 16, or −1 and the n searched
// (0 without AVX-512).
func indexVec(x []float32, v float32) (int, int) {
	chunks := len(x) / 16
	if !useAVX512 || chunks == 0 {
		return -1, 0
	}
	return indexF32AVX512(&x[0], chunks, v), chunks * 16
}

// maxF32AVX512 returns the largest of 64·blocks floats and whether they hold
// a NaN (then the largest is meaningless); blocks > 0.
//
//go:noescape
func maxF32AVX512(x *float32, blocks int) (m float32, nan bool)

// indexF32AVX512 returns the index of the first of 16·chunks floats equal to
// v, or −1; chunks > 0.
//
//go:noescape
func indexF32AVX512(x *float32, chunks int, v float32) int
