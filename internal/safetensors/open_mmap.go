//go:build unix

package safetensors

import (
	"errors"
	"fmt"
	"math"
	"os"
	"syscall"
)

// Open memory-maps the named file read-only and parses it. Tensor data is read
// from the mapping on demand, so a large file is not copied into the Go heap;
// call Close to unmap it. If the file is truncated by another process while
// mapped, reading the missing pages raises SIGBUS: do not modify files that are
// open.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	// fd stays open for ReadData until Close.
	keep := false
	defer func() {
		if !keep {
			fd.Close()
		}
	}()
	info, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, &FormatError{Path: path, Reason: "not a regular file"}
	}
	size := info.Size()
	if size < 8 {
		return nil, &FormatError{Path: path, Reason: fmt.Sprintf("file is %d bytes, shorter than the 8-byte header length field", size)}
	}
	if size > math.MaxInt {
		return nil, &FormatError{Path: path, Reason: fmt.Sprintf("file is %d bytes, too large to map on this platform", size)}
	}
	data, err := syscall.Mmap(int(fd.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("safetensors: mapping %s: %w", path, err)
	}
	f, err := parse(data, path)
	if err != nil {
		syscall.Munmap(data)
		return nil, err
	}
	f.release = func() error { return errors.Join(syscall.Munmap(data), fd.Close()) }
	f.mapping = data
	f.fd = fd
	keep = true
	return f, nil
}
