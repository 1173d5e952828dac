// Package hugemem allocates large slices that the kernel backs with
// transparent huge pages where it can (Linux with THP in "madvise" or
// "always" mode), so that filling them takes one page fault per 2 MiB
// instead of one per 4 KiB. On the 2-core VM golora is measured on, touching
// fresh memory cost about 3.5 CPU-seconds per GB with 4 KiB pages and 1.2–2
// with huge pages; a loader writes every byte of the weights it yields once,
// so this is most of its time.
package hugemem

import "unsafe"

// minBytes is the smallest slice worth advising: one huge page. A smaller
// one would take a whole huge page for less data.
const minBytes = hugePage

// hugePage is the size of a transparent huge page on amd64 and arm64.
const hugePage = 2 << 20

// Make returns a zeroed slice of n elements of T like make([]T, n), asking
// the kernel to back it with huge pages before anything touches it. A slice
// of at least a huge page starts on a huge-page boundary (it is carved from
// an allocation one huge page larger, whose unused pages cost no memory
// while nothing touches them: so in memory fresh from the system, not in
// heap memory Go reuses, which it clears whole), so that all of it but a partial last huge page is
// advised: the matrices of a model (2, 8, 28 MiB of NF4 codes) then take no
// 4 KiB page at all, where the Go heap's 8 KiB alignment left a partial
// huge page at each end. The advice is a hint: where it is not supported
// (other systems, THP disabled) Make is just make.
func Make[T any](n int) []T {
	var zero T
	elem := unsafe.Sizeof(zero)
	size := uintptr(n) * elem
	if size < minBytes || elem == 0 || hugePage%elem != 0 {
		return advised(make([]T, n), size)
	}
	s := make([]T, n+hugePage/int(elem))
	// Go aligns large allocations to its page size (8 KiB), so the bytes
	// up to the boundary are whole elements of any T up to that size.
	skip := -uintptr(unsafe.Pointer(unsafe.SliceData(s))) & (hugePage - 1)
	if skip%elem != 0 {
		return advised(s[:n:n], size)
	}
	skip /= elem
	return advised(s[skip:skip+uintptr(n):skip+uintptr(n)], size)
}

// advised advises the huge-page-aligned part of s (size bytes) and returns s.
func advised[T any](s []T, size uintptr) []T {
	if size < minBytes {
		return s
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	lo := (start + hugePage - 1) &^ (hugePage - 1)
	hi := (start + size) &^ (hugePage - 1)
	if hi > lo {
		advise(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), size)[lo-start : hi-start])
	}
	return s
}
