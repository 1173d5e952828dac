//go:build !amd64

package half

import "github.com/golora/golora/internal/cpu"

// Without amd64 assembly cpu.Best() is always cpu.Generic; l is ignored.
func matVecAt(_ cpu.Level, f16 bool, y, x []float32, w []uint16) {
	matVecGeneric(f16, y, x, w[:len(y)*len(x)])
}

func widenAt(_ cpu.Level, f16 bool, dst []float32, src []uint16) {
	for i, h := range src {
		dst[i] = widen16(f16, h)
	}
}
