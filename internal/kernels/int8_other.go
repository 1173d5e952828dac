//go:build !amd64

package kernels

import "github.com/golora/golora/internal/cpu"

// int8Rows computes rows rows of an Int8Matrix with the generic code: there
// is no assembly for this architecture (cpu.Best is Generic here).
func int8Rows(_ cpu.Level, y []float32, codes []int8, scales, x []float32, rows, blocks int) {
	cols := blocks * Int8Block
	for r := range rows {
		y[r] = int8DotGeneric(codes[r*cols:(r+1)*cols], scales[r*blocks:(r+1)*blocks], x)
	}
}
