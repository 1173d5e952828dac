//go:build unix

package pagecache

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestReadMatchesMapping: Read gives the bytes of any part of the mapping
// (read from the file at the part's offset), and copies a part that is not
// in the mapping.
func TestReadMatchesMapping(t *testing.T) {
	want := pattern(3*os.Getpagesize()+77, 13, 1)
	f, m := mapFile(t, want)
	for _, r := range [][2]int{{0, len(want)}, {1, 2}, {4000, 9000}, {len(want) - 5, len(want)}, {9, 9}} {
		dst := make([]byte, r[1]-r[0]+1)
		if err := Read(f, m, m[r[0]:r[1]], dst); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dst[:r[1]-r[0]], want[r[0]:r[1]]) || dst[len(dst)-1] != 0 {
			t.Fatalf("Read of [%d, %d) differs", r[0], r[1])
		}
	}
	other := []byte("not in the mapping")
	dst := make([]byte, len(other))
	if err := Read(f, m, other, dst); err != nil || !bytes.Equal(dst, other) {
		t.Fatalf("Read of a part outside the mapping: %q, %v", dst, err)
	}
	f.Close()
	if err := Read(f, m, m[10:20], dst); err == nil {
		t.Fatal("Read from a closed file: no error")
	}
}

// pattern returns n bytes, byte i being i·mul + add.
func pattern(n, mul, add int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*mul + add)
	}
	return b
}

// mapFile writes data to a new file, synced (the kernel drops no dirty
// pages), and returns the file, open for reading, and a read-only shared
// mapping of it; both are released when the test ends.
func mapFile(t *testing.T, data []byte) (*os.File, []byte) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, len(data), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(m) })
	return f, m
}
