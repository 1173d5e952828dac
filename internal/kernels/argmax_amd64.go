package kernels

// maxVec returns the largest of the first n elements of x and whether they
// hold a NaN, n the largest multiple of 64 (AVX-512) or 32 (AVX2) in
// len(x); n is 0 without either or for fewer elements.
func maxVec(x []float32) (m float32, nan bool, n int) {
	switch {
	case useAVX512 && len(x) >= 64:
		blocks := len(x) / 64
		m, nan = maxF32AVX512(&x[0], blocks)
		return m, nan, blocks * 64
	case useAVX2 && len(x) >= 32:
		blocks := len(x) / 32
		m, nan = maxF32AVX2(&x[0], blocks)
		return m, nan, blocks * 32
	}
	return 0, false, 0
}

// indexVec returns the index of the first element equal to v among the first
// n elements of x, n its largest multiple of 16, or −1 and the n searched
// (0 without AVX-512 or AVX2).
func indexVec(x []float32, v float32) (int, int) {
	chunks := len(x) / 16
	switch {
	case chunks == 0:
		return -1, 0
	case useAVX512:
		return indexF32AVX512(&x[0], chunks, v), chunks * 16
	case useAVX2:
		return indexF32AVX2(&x[0], chunks, v), chunks * 16
	}
	return -1, 0
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

// maxF32AVX2 is maxF32AVX512 on 32·blocks floats.
//
//go:noescape
func maxF32AVX2(x *float32, blocks int) (m float32, nan bool)

// indexF32AVX2 is indexF32AVX512 with AVX2.
//
//go:noescape
func indexF32AVX2(x *float32, chunks int, v float32) int
