package gemm

import (
	"fmt"
	"testing"
)

// BenchmarkMicroKernel measures each code path's micro-kernel alone on
// panels that stay in cache: the ceiling the blocked product can reach.
func BenchmarkMicroKernel(b *testing.B) {
	for _, kr := range levels() {
		b.Run(fmt.Sprintf("%v/%dx%d", kr.level, kr.mr, kr.nr), func(b *testing.B) {
			w := kr.workspace()
			defer kr.put(w)
			kc := kr.kc
			c := make([]float32, kr.mr*kr.nr)
			for b.Loop() {
				kr.micro(kc, &w.a[0], &w.b[0], &c[0], kr.nr, 1, 1)
			}
			b.ReportMetric(2*float64(kr.mr*kr.nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
