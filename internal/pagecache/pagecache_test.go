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
