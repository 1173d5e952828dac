//go:build unix

package pagecache_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/golora/golora/internal/pagecache"
)

// A loader copies a part of a mapped file into its own buffer with pread,
// leaving no page of the mapping resident.
func ExampleRead() {
	dir, _ := os.MkdirTemp("", "pagecache")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "weights")
	os.WriteFile(path, []byte("tensor bytes"), 0o644)
	f, _ := os.Open(path)
	defer f.Close()
	m, _ := syscall.Mmap(int(f.Fd()), 0, 12, syscall.PROT_READ, syscall.MAP_SHARED)
	defer syscall.Munmap(m)

	buf := make([]byte, 5)
	if err := pagecache.Read(f, m, m[7:], buf); err != nil {
		fmt.Println(err)
	}
	fmt.Println(string(buf))
	// Output:
	// bytes
}
