package kernels

import "unsafe"

// PrefetchMaxBytes bounds what one Prefetch call asks for: a quarter of a
// 1 MiB L2, so that data fetched ahead does not evict the data in use.
const PrefetchMaxBytes = 256 << 10

// Prefetch asks the CPU to bring x, up to its first PrefetchMaxBytes, into
// the cache without waiting for it: a hint that changes no result, for
// data the caller reads soon after some work of its own (a serving step's
// attention prefetches the next sequence's cache while it runs the
// current one). It does nothing where there is no prefetch instruction.
func Prefetch[E float32 | uint16](x []E) {
	if len(x) == 0 {
		return
	}
	n := min(len(x)*int(unsafe.Sizeof(x[0])), PrefetchMaxBytes)
	prefetch(unsafe.Pointer(&x[0]), n/64+1) // the lines it spans, however aligned
}
