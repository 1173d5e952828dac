//go:build !amd64

package nf4

import "github.com/golora/golora/internal/cpu"

// mulVecInt8At computes y[r] for rows [r0, r1) with the Go code: there is
// no assembly for this architecture (cpu.Best is Generic here).
func (m *Matrix) mulVecInt8At(_ cpu.Level, y []float32, x *Int8Vector, absmax []float32, r0, r1 int) {
	m.mulVecInt8Scalar(y, x, absmax, r0, r1)
}

// quantizePairAt is quantizePairScalar: there is no assembly for this
// architecture.
func quantizePairAt(_ cpu.Level, q *[int8Pair]int8, scale *[int8Lanes]float32, bias *[int8Lanes]int32, x []float32) int {
	return quantizePairScalar(q, scale, bias, x)
}
