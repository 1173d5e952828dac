// Package parallel splits loops over a range across the available CPUs.
package parallel

import (
	"runtime"
	"sync"
)

// For calls fn on consecutive chunks of [0, n) that together cover it, one
// per available CPU (GOMAXPROCS), concurrently, and returns when all have
// finished. Chunk boundaries are multiples of align (except n itself), and
// there are no more chunks than keep each at least minChunk long, so small
// loops run as a single call on the calling goroutine with no goroutine
// started. The last chunk runs on the calling goroutine.
func For(n, minChunk, align int, fn func(lo, hi int)) {
	align = max(align, 1)
	units := (n + align - 1) / align
	workers := min(runtime.GOMAXPROCS(0), units, max(1, n/max(minChunk, 1)))
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo := units * w / workers * align
		hi := min(n, units*(w+1)/workers*align)
		if w == workers-1 {
			fn(lo, hi)
			continue
		}
		wg.Go(func() { fn(lo, hi) })
	}
	wg.Wait()
}
