//go:build !amd64

package kernels

import "github.com/golora/golora/internal/cpu"

func attendFastScores(l cpu.Level, scores, q, keys []float32, stride int, scale float32) int {
	panic("kernels: attendFastScores without assembly")
}

func attendFastValues(l cpu.Level, out, w, values []float32, stride int) {
	panic("kernels: attendFastValues without assembly")
}
