package kernels

import "github.com/golora/golora/internal/half"

// The low-rank kernels compute a LoRA term y += scaling·(x·Aᵀ)·Bᵀ for one
// row x in two steps: the shrink s = scaling·A·x (A is [r, in]) and the
// expand y += Bᵀᵀ·s, with B held transposed as Bᵀ [r, out] so that the
// expand adds r scaled rows of Bᵀ to y (long vectors, whatever the rank).
// Each has a float32 and a binary16 form (the matrices held in half
// precision, converted as they are read; sums in float32). They use AVX-512
// where the CPU has it and the vectors are a multiple of 16 long, and Go
// elsewhere; the two agree within float32 rounding.

// LowRankShrink writes s[k] = scale·Σᵢ x[i]·a[k·in+i] for k < r.
func LowRankShrink(s, x, a []float32, r, in int, scale float32) {
	s, x, a = s[:r], x[:in], a[:r*in]
	if r == 0 || lowRankShrinkVec(s, x, a, nil, in, scale) {
		return
	}
	for k := range s {
		s[k] = scale * Dot(x, a[k*in:(k+1)*in])
	}
}

// LowRankShrinkF16 is LowRankShrink with a in binary16.
func LowRankShrinkF16(s, x []float32, a []uint16, r, in int, scale float32) {
	s, x, a = s[:r], x[:in], a[:r*in]
	if r == 0 || lowRankShrinkVec(s, x, nil, a, in, scale) {
		return
	}
	for k := range s {
		var sum float32
		for i, h := range a[k*in : (k+1)*in] {
			sum += x[i] * half.F16ToFloat32(h)
		}
		s[k] = scale * sum
	}
}

// LowRankExpand adds Σ_k s[k]·bt[k·out:(k+1)·out] to y[:out] for k < r.
func LowRankExpand(y, s, bt []float32, r, out int) {
	expand(y[:out], s[:r], bt[:r*out], out)
}

// LowRankExpandF16 is LowRankExpand with bt in binary16.
func LowRankExpandF16(y, s []float32, bt []uint16, r, out int) {
	expandF16(y[:out], s[:r], bt[:r*out], out)
}

// LowRankExpandCols adds columns [lo, hi) of LowRankExpand's term to
// y[:hi−lo]: Σ_k s[k]·bt[k·ld+lo : k·ld+hi] for k < r, with bt [r, ld]. A
// product split by columns adds its own columns' term with it. With lo a
// multiple of 16, and hi one too or ld, the sums are LowRankExpand's (on
// rows of length ld), bit for bit.
func LowRankExpandCols(y, s, bt []float32, r, ld, lo, hi int) {
	if r == 0 || lo >= hi {
		return
	}
	expand(y[:hi-lo], s[:r], bt[lo:(r-1)*ld+hi], ld)
}

// LowRankExpandColsF16 is LowRankExpandCols with bt in binary16.
func LowRankExpandColsF16(y, s []float32, bt []uint16, r, ld, lo, hi int) {
	if r == 0 || lo >= hi {
		return
	}
	expandF16(y[:hi-lo], s[:r], bt[lo:(r-1)*ld+hi], ld)
}

// expand adds Σ_k s[k]·bt[k·ld:][:len(y)] to y, for k < len(s).
func expand(y, s, bt []float32, ld int) {
	for o := lowRankExpandVec(y, s, bt, nil, ld); o < len(y); o++ {
		var sum float32
		for k, v := range s {
			sum += v * bt[k*ld+o]
		}
		y[o] += sum
	}
}

// expandF16 is expand with bt in binary16.
func expandF16(y, s []float32, bt []uint16, ld int) {
	for o := lowRankExpandVec(y, s, nil, bt, ld); o < len(y); o++ {
		var sum float32
		for k, v := range s {
			sum += v * half.F16ToFloat32(bt[k*ld+o])
		}
		y[o] += sum
	}
}

// F16ToFloat32s converts the binary16 values of src into dst[:len(src)].
func F16ToFloat32s(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i := f16ToFloat32sVec(dst, src); i < len(src); i++ {
		dst[i] = half.F16ToFloat32(src[i])
	}
}
