package kernels

import "testing"

// TestPrefetchLengths calls Prefetch on slices empty, shorter than a line,
// unaligned and longer than PrefetchMaxBytes, of float32 and uint16: a hint must not fault nor
// write, whatever the slice.
func TestPrefetchLengths(t *testing.T) {
	buf := make([]float32, PrefetchMaxBytes/4+100)
	for i := range buf {
		buf[i] = float32(i)
	}
	for _, r := range [][2]int{{0, 0}, {0, 1}, {3, 20}, {1, 300}, {0, len(buf)}, {7, len(buf)}} {
		Prefetch(buf[r[0]:r[1]])
	}
	half := make([]uint16, 100)
	Prefetch(half[5:])
	Prefetch(half[:0])
	for i, v := range buf {
		if v != float32(i) {
			t.Fatalf("element %d changed to %g", i, v)
		}
	}
}
