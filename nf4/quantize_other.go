//go:build !amd64

package nf4

import "github.com/golora/golora/internal/cpu"

// Without amd64 assembly cpu.Best() is always cpu.Generic; l is ignored.
func quantizeBlocksRangeAt(l cpu.Level, packed []byte, absmax []float32, w []float32, blockSize int) int {
	return quantizeBlocksRangeScalar(packed, absmax, w, blockSize)
}
