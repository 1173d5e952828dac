package pagecache

import (
	"os"
	"unsafe"
)

// Prefetch asks the kernel to start reading part, a range of mapping (the
// mapping of file from its offset 0, as for Read), into the page cache in
// the background, so that a later Read finds it there: a loader that
// prefetches the tensors ahead of the one it converts overlaps the disk with
// its CPU work, where its own small reads would each wait for the disk. It
// returns once the reads are queued (it may block while the device queue is
// full). It is a hint: it does nothing where the platform has no such
// advice or part is not in mapping.
func Prefetch(file *os.File, mapping, part []byte) {
	if off, ok := Offset(mapping, part); ok {
		fadvise(file, off, int64(len(part)), adviseWillNeed)
	}
}

// Evict asks the kernel to drop part, a range of mapping, from the page
// cache (pages other processes have mapped stay). A loader streaming a
// checkpoint that does not fit in memory next to the weights it yields
// evicts what it has consumed: the kernel would have to reclaim those pages
// anyway to make room for the weights, and doing it in bulk while memory is
// still free spares the allocations the direct reclaim and compaction they
// would otherwise stall in. Reading part again reads the file again. It is a
// hint, as Prefetch.
func Evict(file *os.File, mapping, part []byte) {
	if off, ok := Offset(mapping, part); ok {
		fadvise(file, off, int64(len(part)), adviseDontNeed)
	}
}

// Offset returns where part starts in mapping (the file offset of a mapping
// from offset 0), and whether part lies inside it and is not empty.
func Offset(mapping, part []byte) (int64, bool) {
	if len(part) == 0 || len(mapping) == 0 {
		return 0, false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mapping)))
	start := uintptr(unsafe.Pointer(unsafe.SliceData(part)))
	if start < base || start-base+uintptr(len(part)) > uintptr(len(mapping)) {
		return 0, false
	}
	return int64(start - base), true
}

// Available returns the memory the system could give a process without
// swapping (Linux's MemAvailable: free memory plus the page cache and other
// caches it can reclaim), and false where it cannot be known.
func Available() (int64, bool) { return available() }
