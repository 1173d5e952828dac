// Package pagecache helps a loader stream a checkpoint far larger than the
// weights it yields without leaving the whole file resident in the process
// (file-backed pages count in its RSS until unmapped or dropped): Read copies
// a part of a file mapping into a buffer with pread, never touching the
// mapping, and Drop gives back the pages of a mapping a loader did read.
// The data stays in the kernel's page cache either way.
package pagecache

import (
	"fmt"
	"io"
)

// Drop advises the kernel that the pages of mapping spanned by part are not
// needed any more. part must lie inside mapping, which must be a read-only
// file mapping (never Go heap memory: dropping anonymous pages would zero
// them); mapping starts on a page boundary, as mmap returns it. The range is
// widened to whole pages, which only costs a neighbour a re-read. Drop is a
// hint: it does nothing where the platform has no such advice, and errors
// are ignored for the same reason.
func Drop(mapping, part []byte) {
	off, ok := Offset(mapping, part)
	if !ok {
		return
	}
	page := int64(pageSize())
	lo := off / page * page
	hi := min(int64(len(mapping)), (off+int64(len(part))+page-1)/page*page)
	drop(mapping[lo:hi])
}

// Read copies part, a range of mapping, into dst (at least len(part) bytes)
// with file.ReadAt, file being the file mapping maps from its offset 0. A
// loader converting a tensor piece by piece through a small buffer this way
// takes no page fault per page and leaves no page of the mapping resident:
// on a 2.5 GB checkpoint in the page cache, pread through a 1 MiB buffer ran
// at 9 GB/s where touching the mapping (and dropping it) ran at 1 GB/s. When
// part does not lie inside mapping it is copied from memory instead.
func Read(file io.ReaderAt, mapping, part, dst []byte) error {
	if len(part) == 0 {
		return nil
	}
	dst = dst[:len(part)]
	off, ok := Offset(mapping, part)
	if !ok {
		copy(dst, part)
		return nil
	}
	if _, err := file.ReadAt(dst, off); err != nil {
		return fmt.Errorf("pagecache: reading %d bytes at offset %d: %w", len(dst), off, err)
	}
	return nil
}
