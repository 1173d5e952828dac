//go:build !amd64

package gemm

// transposeBlocks reports false: only amd64 has a block transpose.
func transposeBlocks(panel []float32, w int, src []float32, ld, rows, k int) bool { return false }

// transpose8Fits reports false: only amd64 has a block transpose.
func transpose8Fits(k int) bool { return false }

// mergeBlocksT reports false: only amd64 has a block transpose.
func mergeBlocksT(t []float32, ldt, rows, cols int, beta float32, c []float32, ldc int) bool {
	return false
}

// copyRuns reports false: only amd64 has the masked moves.
func copyRuns(dst []float32, dstStride int, src []float32, srcStride, n, w, k int) bool {
	return false
}
