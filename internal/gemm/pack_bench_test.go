package gemm

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPack measures the packing routines, which run once per element of
// a block against only mr or nr multiply-adds per element in the
// micro-kernel. It reports the fastest of its runs (the machine may be
// shared).
func BenchmarkPack(b *testing.B) {
	const mr, nr, kc, rows, ld = 14, 32, 384, 1008, 2048
	src := make([]float32, (kc+rows)*ld)
	dst := make([]float32, (rows+nr)*kc)
	run := func(b *testing.B, f func()) {
		var best time.Duration
		for b.Loop() {
			t0 := time.Now()
			f()
			if d := time.Since(t0); best == 0 || d < best {
				best = d
			}
		}
		b.ReportMetric(float64(rows*kc)/best.Seconds()/1e9, "Gelem/s")
	}
	for _, trans := range []bool{false, true} {
		b.Run(fmt.Sprintf("A/trans=%v", trans), func(b *testing.B) {
			run(b, func() { packA(dst, trans, src, ld, 0, rows, 0, kc, mr) })
		})
		b.Run(fmt.Sprintf("B/trans=%v", trans), func(b *testing.B) {
			run(b, func() { packSliceB(dst, trans, src, ld, 0, kc, 0, rows, nr) })
		})
	}
}
