package kernels

// lowRankShrinkVec runs the shrink in AVX-512 (a or a16, whichever is not
// nil) and reports true, or reports false when the CPU or in (not a
// multiple of 16) has no kernel.
func lowRankShrinkVec(s, x, a []float32, a16 []uint16, in int, scale float32) bool {
	if !useAVX512 || in%16 != 0 || in == 0 {
		return false
	}
	if a16 != nil {
		shrinkF16AVX512(&s[0], &x[0], &a16[0], in/16, len(s), scale)
	} else {
		shrinkF32AVX512(&s[0], &x[0], &a[0], in/16, len(s), scale)
	}
	return true
}

// lowRankExpandVec runs the expand of y's first multiple of 16 entries in
// AVX-512, the rows of bt (or bt16) ld apart, and returns how many it did
// (0 without AVX-512 or a rank).
func lowRankExpandVec(y, s, bt []float32, bt16 []uint16, ld int) int {
	chunks := len(y) / 16
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

// shrinkF32AVX512 writes s[k] = scale·x·a[k·16·chunks:][:16·chunks] for
// k < r; chunks, r > 0.
//
//go:noescape
func shrinkF32AVX512(s, x, a *float32, chunks, r int, scale float32)

// shrinkF16AVX512 is shrinkF32AVX512 with a in binary16.
//
//go:noescape
func shrinkF16AVX512(s, x *float32, a *uint16, chunks, r int, scale float32)

// expandF32AVX512 adds Σ_k s[k]·bt[k·ld:][:16·chunks] to y[:16·chunks] for
// k < r; chunks, r > 0.
//
//go:noescape
func expandF32AVX512(y, s, bt *float32, chunks, r, ld int)

// expandF16AVX512 is expandF32AVX512 with bt in binary16.
//
//go:noescape
func expandF16AVX512(y, s *float32, bt *uint16, chunks, r, ld int)

// f16ToFloat32sVec converts the first multiple of 16 values of src in
// AVX-512 and returns how many it did.
func f16ToFloat32sVec(dst []float32, src []uint16) int {
	chunks := len(src) / 16
	if !useAVX512 || chunks == 0 {
		return 0
	}
	_ = dst[chunks*16-1]
	f16ToF32AVX512(&dst[0], &src[0], chunks)
	return chunks * 16
}

// f16ToF32AVX512 converts 16·chunks binary16 values; chunks > 0.
//
//go:noescape
func f16ToF32AVX512(dst *float32, src *uint16, chunks int)
