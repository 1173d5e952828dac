package kernels

import "github.com/golora/golora/internal/cpu"

// lowRankLevel returns the level of the low-rank kernels for float32
// matrices or, with f16, binary16 ones (and of F16ToFloat32s): AVX-512, else
// AVX2 (with F16C for binary16), else Generic.
func lowRankLevel(f16 bool) cpu.Level {
	if l := vectorLevel(); l != cpu.AVX2 || !f16 || hasF16C {
		return l
	}
	return cpu.Generic
}

// lowRankCallWork bounds the multiply-adds (or conversions) of one assembly
// call of the low-rank kernels, so that a call returns within tens of
// microseconds (assembly is not preemptible).
const lowRankCallWork = 1 << 16

// shrinkAsm is shrink for len(x) a positive multiple of 16 with the assembly
// of level l (AVX2 or AVX-512), whole rows of a (or a16) per call.
func shrinkAsm(l cpu.Level, s, x, a []float32, a16 []uint16, scale float32) {
	in := len(x)
	if a16 != nil {
		_ = a16[len(s)*in-1]
	} else {
		_ = a[len(s)*in-1]
	}
	rows := max(1, lowRankCallWork/in)
	for k := 0; k < len(s); k += rows {
		n := min(rows, len(s)-k)
		switch {
		case a16 != nil && l >= cpu.AVX512:
			shrinkF16AVX512(&s[k], &x[0], &a16[k*in], in/16, n, scale)
		case a16 != nil:
			shrinkF16AVX2(&s[k], &x[0], &a16[k*in], in/16, n, scale)
		case l >= cpu.AVX512:
			shrinkF32AVX512(&s[k], &x[0], &a[k*in], in/16, n, scale)
		default:
			shrinkF32AVX2(&s[k], &x[0], &a[k*in], in/16, n, scale)
		}
	}
}

// expandAsm is expand for len(y) a positive multiple of 16 and len(s) > 0
// with the assembly of level l (AVX2 or AVX-512), as many columns per call
// as keep the call's work bounded.
func expandAsm(l cpu.Level, y, s, bt []float32, bt16 []uint16, ld int) {
	r := len(s)
	if bt16 != nil {
		_ = bt16[(r-1)*ld+len(y)-1]
	} else {
		_ = bt[(r-1)*ld+len(y)-1]
	}
	step := max(16, lowRankCallWork/r&^15)
	for o := 0; o < len(y); o += step {
		chunks := min(step, len(y)-o) / 16
		switch {
		case bt16 != nil && l >= cpu.AVX512:
			expandF16AVX512(&y[o], &s[0], &bt16[o], chunks, r, ld)
		case bt16 != nil:
			expandF16AVX2(&y[o], &s[0], &bt16[o], chunks, r, ld)
		case l >= cpu.AVX512:
			expandF32AVX512(&y[o], &s[0], &bt[o], chunks, r, ld)
		default:
			expandF32AVX2(&y[o], &s[0], &bt[o], chunks, r, ld)
		}
	}
}

// f16ToFloat32sAsm converts src (a positive multiple of 16 values) into dst
// with the assembly of level l (AVX2 or AVX-512).
func f16ToFloat32sAsm(l cpu.Level, dst []float32, src []uint16) {
	_ = dst[len(src)-1]
	for i := 0; i < len(src); i += lowRankCallWork {
		chunks := min(lowRankCallWork, len(src)-i) / 16
		if l >= cpu.AVX512 {
			f16ToF32AVX512(&dst[i], &src[i], chunks)
		} else {
			f16ToF32AVX2(&dst[i], &src[i], chunks)
		}
	}
}

// shrinkF32AVX512 writes s[k] = scale·x·a[k·16·chunks:][:16·chunks] for
// k < r; chunks, r > 0. Chunks of 16 lanes alternate between two
// accumulators, added lane by lane, then the lanes folded in halves.
//
//go:noescape
func shrinkF32AVX512(s, x, a *float32, chunks, r int, scale float32)

// shrinkF32AVX2 is shrinkF32AVX512 with AVX2 and FMA, each 16-lane
// accumulator in two registers: the same bits.
//
//go:noescape
func shrinkF32AVX2(s, x, a *float32, chunks, r int, scale float32)

// shrinkF16AVX512 is shrinkF32AVX512 with a in binary16.
//
//go:noescape
func shrinkF16AVX512(s, x *float32, a *uint16, chunks, r int, scale float32)

// shrinkF16AVX2 is shrinkF16AVX512 with AVX2, FMA and F16C: the same bits.
//
//go:noescape
func shrinkF16AVX2(s, x *float32, a *uint16, chunks, r int, scale float32)

// expandF32AVX512 adds Σ_k s[k]·bt[k·ld:][:16·chunks] to y[:16·chunks] for
// k < r; chunks, r > 0. Even ranks' products are fused into y, odd ranks'
// into a zeroed accumulator, and the two added at the end.
//
//go:noescape
func expandF32AVX512(y, s, bt *float32, chunks, r, ld int)

// expandF32AVX2 is expandF32AVX512 with AVX2 and FMA: the same bits.
//
//go:noescape
func expandF32AVX2(y, s, bt *float32, chunks, r, ld int)

// expandF16AVX512 is expandF32AVX512 with bt in binary16.
//
//go:noescape
func expandF16AVX512(y, s *float32, bt *uint16, chunks, r, ld int)

// expandF16AVX2 is expandF16AVX512 with AVX2, FMA and F16C: the same bits.
//
//go:noescape
func expandF16AVX2(y, s *float32, bt *uint16, chunks, r, ld int)

// f16ToF32AVX512 converts 16·chunks binary16 values; chunks > 0.
//
//go:noescape
func f16ToF32AVX512(dst *float32, src *uint16, chunks int)

// f16ToF32AVX2 is f16ToF32AVX512 with F16C.
//
//go:noescape
func f16ToF32AVX2(dst *float32, src *uint16, chunks int)
