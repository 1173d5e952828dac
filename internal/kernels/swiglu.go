package kernels

import "math"

// sigmoidChunk is the number of elements whose sigmoid is computed at once,
// small enough for the scratch to stay in L1.
const sigmoidChunk = 1024

// sigmoids writes 1/(1+e^−x) into dst for every element of x, from
// exponentials of −|x| so that none overflows.
func sigmoids(dst, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = -abs32(v)
	}
	expShifted(dst, dst, 0)
	for i, v := range x {
		// 1/(1+e) for v ≥ 0 and e/(1+e) for v < 0, with e = e^−|v|. The
		// numerator is chosen with the sign bit as a mask: a branch on the
		// sign would be mispredicted half the time.
		e := dst[i]
		neg := uint32(int32(math.Float32bits(v)) >> 31)
		num := math.Float32frombits(math.Float32bits(e)&neg | math.Float32bits(1)&^neg)
		dst[i] = num / (1 + e)
	}
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// SwiGLU writes silu(gate) ⊙ up into dst, the gating of LLaMA's MLP; dst
// may be gate or up. On AVX-512 (AVX2), −|gate| and the sigmoid's last
// steps (the choice of numerator, the division, the two products) run 16
// (8) elements at a time, with the same bits as the scalar code: a 32-row
// Batch step gates 32 rows of the MLP's hidden width per layer, where
// scalar loops were about a tenth of the layers' time.
func SwiGLU(dst, gate, up []float32) {
	var sg [sigmoidChunk]float32
	for lo := 0; lo < len(gate); lo += sigmoidChunk {
		hi := min(lo+sigmoidChunk, len(gate))
		g, e := gate[lo:hi], sg[:hi-lo]
		for i := negAbs(e, g); i < len(g); i++ {
			e[i] = -abs32(g[i])
		}
		expShifted(e, e, 0)
		d, u := dst[lo:hi], up[lo:hi]
		done := swigluFinish(d, g, u, e)
		swigluFinishGo(d[done:], g[done:], u[done:], e[done:])
	}
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

// SwiGLUBackward writes the gradient of SwiGLU given the output gradient dy:
// with respect to the gate, dy·up·σ(g)·(1 + g·(1 − σ(g))), into dGate when
// it is not nil, and with respect to up, dy·silu(g), into dUp when it is not
// nil.
func SwiGLUBackward(dGate, dUp, gate, up, dy []float32) {
	var sg [sigmoidChunk]float32
	for lo := 0; lo < len(gate); lo += sigmoidChunk {
		hi := min(lo+sigmoidChunk, len(gate))
		s := sg[:hi-lo]
		sigmoids(s, gate[lo:hi])
		if dGate != nil {
			for i := lo; i < hi; i++ {
				si := s[i-lo]
				dGate[i] = dy[i] * up[i] * si * (1 + gate[i]*(1-si))
			}
		}
		if dUp != nil {
			for i := lo; i < hi; i++ {
				dUp[i] = dy[i] * gate[i] * s[i-lo]
			}
		}
	}
}
