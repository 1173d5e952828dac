//go:build !amd64

package gemm

// transposeBlocks reports false: only amd64 has a block transpose.
func transposeBlocks(panel []float32, w int, src []float32, ld, rows, k int) bool { return false }

// transpose8Fits reports false: only amd64 has a block transpose.
func transpose8Fits(k int) bool { return false }
