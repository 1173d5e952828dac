package kernels

// PrefetchMaxBytes bounds what one Prefetch call asks for: a quarter of a
// 1 MiB L2, so that data fetched ahead does not evict the data in use.
const PrefetchMaxBytes = 256 << 10

// Prefetch asks the CPU to bring x, up to its first PrefetchMaxBytes, into
// the cache without waiting for it: a hint that changes no result, for
// data the caller reads soon after some work of its own (a serving step's
// attention prefetches the next sequence's cache while it runs the
// current one). It does nothing where there is no prefetch instruction.
func Prefetch(x []float32) {
	n := min(len(x), PrefetchMaxBytes/4)
	if n == 0 {
		return
	}
	prefetch(&x[0], n*4/64+1) // the lines it spans, however aligned
}
