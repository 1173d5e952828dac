//go:build unix

package pagecache

import (
	"os"

	"golang.org/x/sys/unix"
)

func pageSize() int { return os.Getpagesize() }

// drop ignores the error: the advice is an optimisation, and a failure only
// leaves the pages resident.
func drop(b []byte) { _ = unix.Madvise(b, unix.MADV_DONTNEED) }
