package kernels

import (
	"github.com/golora/golora/internal/cpu"
	"github.com/golora/golora/internal/half"
)

// The low-rank kernels compute a LoRA term y += scaling·(x·Aᵀ)·Bᵀ for one
// row x in two steps: the shrink s = scaling·A·x (A is [r, in]) and the
// expand y += Bᵀᵀ·s, with B held transposed as Bᵀ [r, out] so that the
// expand adds r scaled rows of Bᵀ to y (long vectors, whatever the rank).
// Each has a float32 and a binary16 form (the matrices held in half
// precision, converted as they are read; sums in float32). They use
// assembly where the CPU has AVX-512, or AVX2 with FMA (and F16C for
// binary16), and the vectors are a multiple of 16 long, and Go elsewhere.
// Both assembly levels run the same fused multiply-adds in the same order
// (16 lanes in two accumulators, one for even and one for odd chunks or
// ranks, AVX2 holding each in two registers), so they give the same bits;
// the Go code agrees with them within float32 rounding.

// LowRankShrink writes s[k] = scale·Σᵢ x[i]·a[k·in+i] for k < r.
func LowRankShrink(s, x, a []float32, r, in int, scale float32) {
	shrink(lowRankLevel(false), s[:r], x[:in], a[:r*in], nil, scale)
}

// LowRankShrinkF16 is LowRankShrink with a in binary16.
func LowRankShrinkF16(s, x []float32, a []uint16, r, in int, scale float32) {
	shrink(lowRankLevel(true), s[:r], x[:in], nil, a[:r*in], scale)
}

// shrink is LowRankShrink with a, or LowRankShrinkF16 with a16 (a nil),
// run with the kernels of level l.
func shrink(l cpu.Level, s, x, a []float32, a16 []uint16, scale float32) {
	in := len(x)
	if len(s) == 0 {
		return
	}
	if l != cpu.Generic && in%16 == 0 && in > 0 {
		shrinkAsm(l, s, x, a, a16, scale)
		return
	}
	for k := range s {
		if a16 == nil {
			s[k] = scale * Dot(x, a[k*in:(k+1)*in])
			continue
		}
		var sum float32
		for i, h := range a16[k*in : (k+1)*in] {
			sum += x[i] * half.F16ToFloat32(h)
		}
		s[k] = scale * sum
	}
}

// LowRankExpand adds Σ_k s[k]·bt[k·out:(k+1)·out] to y[:out] for k < r.
func LowRankExpand(y, s, bt []float32, r, out int) {
	expand(lowRankLevel(false), y[:out], s[:r], bt[:r*out], nil, out)
}

// LowRankExpandF16 is LowRankExpand with bt in binary16.
func LowRankExpandF16(y, s []float32, bt []uint16, r, out int) {
	expand(lowRankLevel(true), y[:out], s[:r], nil, bt[:r*out], out)
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
	expand(lowRankLevel(false), y[:hi-lo], s[:r], bt[lo:(r-1)*ld+hi], nil, ld)
}

// LowRankExpandColsF16 is LowRankExpandCols with bt in binary16.
func LowRankExpandColsF16(y, s []float32, bt []uint16, r, ld, lo, hi int) {
	if r == 0 || lo >= hi {
		return
	}
	expand(lowRankLevel(true), y[:hi-lo], s[:r], nil, bt[lo:(r-1)*ld+hi], ld)
}

// expand adds Σ_k s[k]·bt[k·ld:][:len(y)] to y for k < len(s), reading
// bt16 instead when bt is nil, with the kernels of level l on the first
// multiple of 16 entries of y and Go on the rest. Each entry's sum depends
// only on whether the kernels or Go compute it, which is what keeps
// LowRankExpandCols's column ranges bit for bit LowRankExpand's.
func expand(l cpu.Level, y, s, bt []float32, bt16 []uint16, ld int) {
	o := 0
	if n := len(y) &^ 15; l != cpu.Generic && n > 0 && len(s) > 0 {
		expandAsm(l, y[:n], s, bt, bt16, ld)
		o = n
	}
	for ; o < len(y); o++ {
		var sum float32
		if bt16 == nil {
			for k, v := range s {
				sum += v * bt[k*ld+o]
			}
		} else {
			for k, v := range s {
				sum += v * half.F16ToFloat32(bt16[k*ld+o])
			}
		}
		y[o] += sum
	}
}

// F16ToFloat32s converts the binary16 values of src into dst[:len(src)].
func F16ToFloat32s(dst []float32, src []uint16) {
	f16ToFloat32s(lowRankLevel(true), dst[:len(src)], src)
}

// f16ToFloat32s is F16ToFloat32s with the kernels of level l on the first
// multiple of 16 values (the conversion is exact: every level gives the
// same numbers).
func f16ToFloat32s(l cpu.Level, dst []float32, src []uint16) {
	i := 0
	if n := len(src) &^ 15; l != cpu.Generic && n > 0 {
		f16ToFloat32sAsm(l, dst[:n], src[:n])
		i = n
	}
	for ; i < len(src); i++ {
		dst[i] = half.F16ToFloat32(src[i])
	}
}
