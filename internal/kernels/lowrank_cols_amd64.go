package kernels

// lowRankExpandColsVec runs the expand of y's first multiple of 16 entries
// in AVX-512, the rows of bt (or bt16) ld apart, and returns how many it
// did (0 without AVX-512).
func lowRankExpandColsVec(y, s, bt []float32, bt16 []uint16, n, ld int) int {
	chunks := n / 16
	if !useAVX512 || chunks == 0 || len(s) == 0 {
		return 0
	}
	if bt16 != nil {
		expandF16AVX512(&y[0], &s[0], &bt16[0], chunks, len(s), ld)
	} else {
		expandF32AVX512(&y[0], &s[0], &bt[0], chunks, len(s), ld)
	}
	return chunks * 16
}
