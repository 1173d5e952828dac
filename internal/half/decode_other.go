//go:build !amd64

package half

import "github.com/golora/golora/internal/cpu"

// Without amd64 assembly cpu.Best() is always cpu.Generic; l is ignored.
func decodeAt(l cpu.Level, f16 bool, dst []float32, src []byte) {
	if f16 {
		decodeF16Scalar(dst, src)
	} else {
		decodeBF16Scalar(dst, src)
	}
}

func decodeBF16FiniteAt(_ cpu.Level, dst []float32, src []byte) bool {
	src = src[:2*len(dst)]
	decodeBF16Scalar(dst, src)
	return finiteLE(src, bf16Exponent)
}
