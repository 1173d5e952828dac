package hugemem

import (
	"os"
	"runtime"
	"unsafe"
)

// Populate asks the kernel to back s with memory now, as writing every page
// of it would (Linux's MADV_POPULATE_WRITE), without changing its contents:
// so one goroutine can take the page faults of memory that another fills
// later, while that one is busy with something else, and the writes then
// find their pages present. It is safe while other goroutines read or write
// s. It is a hint: where the system has no such advice it does nothing, and
// errors (such as a kernel before 5.14) are ignored.
func Populate[T any](s []T) {
	var zero T
	size := uintptr(len(s)) * unsafe.Sizeof(zero)
	if size == 0 {
		return
	}
	// The advice takes whole pages: the ones s touches, which are mapped
	// since s lies in them.
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	lo := start &^ (page - 1)
	hi := (start + size + page - 1) &^ (page - 1)
	populate(lo, hi-lo)
	runtime.KeepAlive(s)
}
