//go:build !(goexperiment.simd && amd64)

package nf4

// Without GOEXPERIMENT=simd on amd64 every kernel is the scalar one.

// dequantRange decodes the flat elements [e0, e1) into dst[:e1-e0].
func (m *Matrix) dequantRange(dst []float32, e0, e1 int) {
	m.dequantRangeScalar(dst, e0, e1)
}

// quantizeBlocksRange encodes the blocks covering w (which starts at a block
// boundary) into packed and absmax and returns the index in w of the first
// non-finite element, or -1.
func quantizeBlocksRange(packed []byte, absmax []float32, w []float32, blockSize int) int {
	return quantizeBlocksRangeScalar(packed, absmax, w, blockSize)
}

// mulTRange computes rows [r0, r1) of every row of y = x·Wᵀ.
func (m *Matrix) mulTRange(y, x []float32, n, r0, r1 int) {
	m.mulTRowsScalar(y, x, n, r0, r1)
}
