package kernels

import "github.com/golora/golora/internal/cpu"

// attendScores writes scores[t] = (q·k_t)·scale for the len(scores) keys,
// key t starting at keys[t·stride]. With a head dimension that is a
// multiple of 16 the dot products run in dot16's order on every kernel
// level; otherwise they are Dot's.
func attendScores(l cpu.Level, scores, q, keys []float32, stride int, scale float32) {
	hd := len(q)
	if len(scores) == 0 {
		return
	}
	_ = keys[(len(scores)-1)*stride+hd-1]
	switch {
	case hd%16 != 0:
		for t := range scores {
			scores[t] = Dot(q, keys[t*stride:t*stride+hd]) * scale
		}
	case l == cpu.Generic:
		for t := range scores {
			scores[t] = dot16(q, keys[t*stride:t*stride+hd]) * scale
		}
	default:
		attendScoresAsm(l, scores, q, keys, stride, scale)
	}
}

// attendValues writes into out (the head dimension) Σ_t w[t]·v_t, value t
// starting at values[t·stride], adding the terms in the order of t as
// axpyF32 does, on every kernel level.
func attendValues(l cpu.Level, out, w, values []float32, stride int) {
	hd := len(out)
	clear(out)
	if len(w) == 0 {
		return
	}
	_ = values[(len(w)-1)*stride+hd-1]
	if hd%16 != 0 || l == cpu.Generic {
		for t, a := range w {
			axpyF32(a, values[t*stride:t*stride+hd], out)
		}
		return
	}
	attendValuesAsm(l, out, w, values, stride)
}

// dot16 returns a·b for len(a) a multiple of 16 in the order of the
// attention kernels: 16 lanes, lane j adding a[j+16m]·b[j+16m] for m = 0,
// 1, …, then the lanes folded in halves (j with j+8, j+4, j+2, j+1). The
// float32 conversion keeps the compiler from fusing the multiply-add, which
// the assembly does not either.
func dot16(a, b []float32) float32 {
	b = b[:len(a)]
	var l [16]float32
	for m := 0; m+16 <= len(a); m += 16 {
		for j := range l {
			l[j] += float32(a[m+j] * b[m+j])
		}
	}
	for half := 8; half >= 1; half /= 2 {
		for j := range half {
			l[j] += l[j+half]
		}
	}
	return l[0]
}
