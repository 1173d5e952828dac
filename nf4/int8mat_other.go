//go:build !amd64

package nf4

import "github.com/golora/golora/internal/cpu"

// mulVecAt computes y[r] for rows [r0, r1) with the Go code: there is no
// assembly for this architecture.
func (m *Int8Matrix) mulVecAt(_ cpu.Level, y []float32, x *Int8Vector, r0, r1 int) {
	m.int8MatScalar(y, x, r0, r1)
}
