package kernels

import "math"

// SwiGLUScratch computes what SwiGLU does, dst = silu(gate) ⊙ up, with the
// same bits, the caller providing the scratch (at least len(gate)
// elements): −|gate| and the sigmoid's last steps (the choice of numerator,
// the division, the two products) run 16 elements at a time on AVX-512,
// where SwiGLU runs them one by one. A 32-row Batch step gates 32 rows of
// the MLP's hidden width per layer, where SwiGLU's scalar loops were about
// a tenth of the layers' time. dst may be gate or up.
func SwiGLUScratch(dst, gate, up, scratch []float32) {
	n := len(gate)
	dst, up, e := dst[:n], up[:n], scratch[:n]
	for i := negAbs(e, gate); i < n; i++ {
		e[i] = -abs32(gate[i])
	}
	expShifted(e, e, 0)
	done := swigluFinish(dst, gate, up, e)
	swigluFinishGo(dst[done:], gate[done:], up[done:], e[done:])
}

// swigluFinishGo writes gate·σ(gate)·up into dst given e = e^−|gate|, as
// sigmoids and SwiGLU compute it.
func swigluFinishGo(dst, gate, up, e []float32) {
	for i, v := range gate {
		neg := uint32(int32(math.Float32bits(v)) >> 31)
		num := math.Float32frombits(math.Float32bits(e[i])&neg | math.Float32bits(1)&^neg)
		dst[i] = v * (num / (1 + e[i])) * up[i]
	}
}
