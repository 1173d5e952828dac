//go:build unix

package gguf

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/golora/golora/internal/fsutil"
)

// Open memory-maps the GGUF file at path read-only and parses it. Tensor data
// is paged in from the file only when read. Call Close when done.
func Open(path string) (*File, error) {
	fd, err := fsutil.Open(path)
	if err != nil {
		return nil, err
	}
	// fd stays open for ReadData until Close.
	keep := false
	defer func() {
		if !keep {
			fd.Close()
		}
	}()
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size == 0 {
		return nil, fmt.Errorf("%s: empty file, not GGUF", path)
	}
	if size != int64(int(size)) {
		return nil, fmt.Errorf("%s: %d bytes is too large to map", path, size)
	}
	data, err := syscall.Mmap(int(fd.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mapping file: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		_ = syscall.Munmap(data)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.release = func() error { return errors.Join(syscall.Munmap(data), fd.Close()) }
	f.fd = fd
	keep = true
	return f, nil
}
