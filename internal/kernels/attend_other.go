//go:build !amd64

package kernels

import "github.com/golora/golora/internal/cpu"

// attendScoresAsm runs the generic code: there is no assembly for this
// architecture (cpu.Best is Generic here).
func attendScoresAsm(_ cpu.Level, scores, q, keys []float32, stride int, scale float32) {
	attendScores(cpu.Generic, scores, q, keys, stride, scale)
}

// attendValuesAsm runs the generic code, as attendScoresAsm.
func attendValuesAsm(_ cpu.Level, out, w, values []float32, stride int) {
	attendValues(cpu.Generic, out, w, values, stride)
}
