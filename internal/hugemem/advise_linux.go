package hugemem

import "golang.org/x/sys/unix"

func advise(b []byte) { _ = unix.Madvise(b, unix.MADV_HUGEPAGE) }

// populate ignores the error: the advice is an optimisation.
func populate(addr, n uintptr) {
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, addr, n, unix.MADV_POPULATE_WRITE)
}

// discard returns b's pages to the system, after which they read as zeros,
// and reports whether it did.
func discard(b []byte) bool { return unix.Madvise(b, unix.MADV_DONTNEED) == nil }
