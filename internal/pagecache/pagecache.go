// Package pagecache lets a loader give back the pages of a read-only file
// mapping it has finished with, so that streaming through a checkpoint far
// larger than the weights it yields does not leave the whole file resident
// in the process (file-backed pages count in its RSS until unmapped or
// dropped). The data stays in the kernel's page cache; touching the range
// again reads it back.
package pagecache

import "unsafe"

// Drop advises the kernel that the pages of mapping spanned by part are not
// needed any more. part must lie inside mapping, which must be a read-only
// file mapping (never Go heap memory: dropping anonymous pages would zero
// them); mapping starts on a page boundary, as mmap returns it. The range is
// widened to whole pages, which only costs a neighbour a re-read. Drop is a
// hint: it does nothing where the platform has no such advice, and errors
// are ignored for the same reason.
func Drop(mapping, part []byte) {
	if len(part) == 0 || len(mapping) == 0 {
		return
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mapping)))
	start := uintptr(unsafe.Pointer(unsafe.SliceData(part)))
	if start < base || start-base+uintptr(len(part)) > uintptr(len(mapping)) {
		return
	}
	page := uintptr(pageSize())
	lo := (start - base) / page * page
	hi := min(uintptr(len(mapping)), (start-base+uintptr(len(part))+page-1)/page*page)
	drop(mapping[lo:hi])
}
