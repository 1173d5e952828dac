//go:build linux

package pagecache

import (
	"bytes"
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPrefetchEvict: after Prefetch and Evict of parts of a file mapping
// (and of parts outside it, which are ignored), Read and the mapping still
// give the file's bytes; Evict of a synced file drops its pages from the
// page cache (mincore), Prefetch brings them back. The residency checks
// are skipped on tmpfs, whose pages are the file and cannot be dropped.
func TestPrefetchEvict(t *testing.T) {
	page := os.Getpagesize()
	want := pattern(64*page+77, 131, 5)
	f, m := mapFile(t, want) // synced: dirty pages are not dropped

	resident := func() int {
		vec := make([]byte, (len(m)+page-1)/page)
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			t.Fatal(e)
		}
		n := 0
		for _, v := range vec {
			n += int(v & 1)
		}
		return n
	}
	var st unix.Statfs_t
	checkResidency := unix.Statfs(f.Name(), &st) == nil && st.Type != unix.TMPFS_MAGIC

	Evict(f, m, m)
	Evict(f, m, want[:10]) // not in the mapping
	if n := resident(); checkResidency && n != 0 {
		t.Errorf("after Evict, %d pages are still in the page cache", n)
	}
	Prefetch(f, m, m[page:])
	Prefetch(f, m, want) // not in the mapping
	dst := make([]byte, len(want))
	if err := Read(f, m, m, dst); err != nil || !bytes.Equal(dst, want) {
		t.Fatalf("Read after Evict and Prefetch: %v", err)
	}
	if checkResidency && resident() == 0 {
		t.Error("after Prefetch and Read, no page is in the page cache")
	}
	Evict(f, m, m[3*page+1:5*page])
	if !bytes.Equal(m, want) {
		t.Fatal("the mapping differs from the file after Evict")
	}
}

// TestParseMemAvailable reads MemAvailable from /proc/meminfo's format and
// refuses lines it does not understand; the running system's value is
// positive.
func TestParseMemAvailable(t *testing.T) {
	meminfo := "MemTotal:       24683748 kB\nMemFree:        11926544 kB\nMemAvailable:   23854356 kB\nBuffers:          100784 kB\n"
	if n, ok := parseMemAvailable([]byte(meminfo)); !ok || n != 23854356<<10 {
		t.Errorf("parseMemAvailable = %d, %v", n, ok)
	}
	for _, bad := range []string{"MemTotal: 1 kB\n", "MemAvailable: 12 MB\n", "MemAvailable: x kB\n", "MemAvailable: -4 kB\n", "MemAvailable:\n"} {
		if n, ok := parseMemAvailable([]byte(bad)); ok {
			t.Errorf("parseMemAvailable(%q) = %d, true", bad, n)
		}
	}
	if n, ok := Available(); !ok || n <= 0 {
		t.Errorf("Available() = %d, %v", n, ok)
	}
}
