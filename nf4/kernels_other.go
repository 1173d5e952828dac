//go:build !amd64

package nf4

import "github.com/golora/golora/internal/cpu"

// Without amd64 assembly cpu.Best() is always cpu.Generic; l is ignored.

func (m *Matrix) dequantRangeAt(l cpu.Level, dst []float32, e0, e1 int) {
	m.dequantRangeScalar(dst, e0, e1)
}

func (m *Matrix) mulTRangeAt(l cpu.Level, y, x []float32, n, r0, r1 int) {
	m.mulTRowsScalar(y, x, n, r0, r1)
}
