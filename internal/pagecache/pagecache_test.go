//go:build unix

package pagecache

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDropKeepsData: after Drop, a read-only file mapping still reads the
// file's bytes (the pages come back from the file, not zeroed), and parts
// outside the mapping are ignored.
func TestDropKeepsData(t *testing.T) {
	want := make([]byte, 5*os.Getpagesize()+123)
	for i := range want {
		want[i] = byte(i*31 + 7)
	}
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, len(want), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	if !bytes.Equal(m, want) {
		t.Fatal("mapping differs from the file")
	}
	Drop(m, m[100:3*os.Getpagesize()+5])
	Drop(m, m[len(m)-10:])
	Drop(m, want[:10]) // not part of m: ignored
	if !bytes.Equal(m, want) {
		t.Fatal("mapping differs from the file after Drop")
	}
	if want[0] != 7 {
		t.Fatal("Drop touched memory outside the mapping")
	}
}

// TestReadMatchesMapping: Read gives the bytes of any part of the mapping
// (read from the file at the part's offset), and copies a part that is not
// in the mapping.
func TestReadMatchesMapping(t *testing.T) {
	want := make([]byte, 3*os.Getpagesize()+77)
	for i := range want {
		want[i] = byte(i*13 + 1)
	}
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, len(want), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
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
