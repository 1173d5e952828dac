//go:build unix

package safetensors

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golora/golora/internal/pagecache"
	"golang.org/x/sys/unix"
)

// BenchmarkReadPaths compares two ways a loader can stream one 256 MiB
// tensor through 128 KiB pieces, alternately in one run: "mmap" reads each
// piece through the mapping (a page fault per page) and then drops its pages,
// "pread" copies each piece into a reused buffer with ReadData. The file is
// in the page cache after the first pass; GB/s counts tensor bytes.
func BenchmarkReadPaths(b *testing.B) {
	const size, piece = 256 << 20, 128 << 10
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 31)
	}
	path := filepath.Join(b.TempDir(), "t.safetensors")
	if err := WriteFile(path, []Tensor{{Name: "w", DType: U8, Shape: []int{size}, Data: data}}, nil); err != nil {
		b.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	t, _ := f.Tensor("w")
	buf := make([]byte, piece)
	var sink byte
	touch := func(p []byte) {
		for i := 0; i < len(p); i += 64 {
			sink += p[i]
		}
	}
	viaMapping := func() {
		for lo := 0; lo < size; lo += piece {
			touch(t.Data[lo : lo+piece])
			dropPages(f.mapping, t.Data[lo:lo+piece])
		}
	}
	viaPread := func() {
		for lo := 0; lo < size; lo += piece {
			if err := f.ReadData(buf, t.Data[lo:lo+piece]); err != nil {
				b.Fatal(err)
			}
			touch(buf)
		}
	}
	viaPread() // page the file in
	var tm, tp time.Duration
	for b.Loop() {
		t0 := time.Now()
		viaMapping()
		t1 := time.Now()
		viaPread()
		tp += time.Since(t1)
		tm += t1.Sub(t0)
	}
	gb := float64(size) * float64(b.N) / 1e9
	b.ReportMetric(gb/tm.Seconds(), "mmap-GB/s")
	b.ReportMetric(gb/tp.Seconds(), "pread-GB/s")
	b.ReportMetric(0, "ns/op")
	_ = sink
}

// dropPages gives back the pages of mapping that part spans (madvise
// DONTNEED), so that the next pass faults them in again.
func dropPages(mapping, part []byte) {
	off, ok := pagecache.Offset(mapping, part)
	if !ok {
		panic("dropPages: part is not in the mapping")
	}
	page := int64(os.Getpagesize())
	lo, hi := off/page*page, min(int64(len(mapping)), (off+int64(len(part))+page-1)/page*page)
	_ = unix.Madvise(mapping[lo:hi], unix.MADV_DONTNEED)
}
