//go:build unix

package pagecache_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/golora/golora/internal/pagecache"
)

// A loader converts a part of a mapped file, then gives its pages back;
// reading the part again pages it back in from the file.
func ExampleDrop() {
	dir, _ := os.MkdirTemp("", "pagecache")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "weights")
	os.WriteFile(path, []byte("tensor bytes"), 0o644)
	f, _ := os.Open(path)
	defer f.Close()
	m, _ := syscall.Mmap(int(f.Fd()), 0, 12, syscall.PROT_READ, syscall.MAP_SHARED)
	defer syscall.Munmap(m)

	part := m[7:]
	fmt.Println(string(part)) // convert it
	pagecache.Drop(m, part)
	fmt.Println(string(part))
	// Output:
	// bytes
	// bytes
}
