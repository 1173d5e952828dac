package nf4

import "github.com/golora/golora/internal/cpu"

// The kernels run at cpu.Best(): the best instruction set of this CPU, capped
// by GOLORA_KERNELS. Every level gives the same bits as the scalar code.

// dequantRange decodes the flat elements [e0, e1) into dst[:e1-e0].
func (m *Matrix) dequantRange(dst []float32, e0, e1 int) {
	m.dequantRangeAt(cpu.Best(), dst, e0, e1)
}

// mulTRange computes rows [r0, r1) of every row of y = x·Wᵀ.
func (m *Matrix) mulTRange(y, x []float32, n, r0, r1 int) {
	m.mulTRangeAt(cpu.Best(), y, x, n, r0, r1)
}

// quantizeBlocksRange encodes the blocks covering w (which starts at a block
// boundary) into packed and absmax and returns the index in w of the first
// non-finite element, or -1.
func quantizeBlocksRange(packed []byte, absmax []float32, w []float32, blockSize int) int {
	return quantizeBlocksRangeAt(cpu.Best(), packed, absmax, w, blockSize)
}
