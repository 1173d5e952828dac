package hugemem

import (
	"testing"
	"unsafe"
)

// TestMake: slices of every size come back zeroed, of the asked length and
// capacity, and writable end to end (the advice must not change memory);
// those of a huge page or more start on a huge-page boundary.
func TestMake(t *testing.T) {
	for _, n := range []int{0, 1, 1000, minBytes/4 - 1, minBytes / 4, 3*hugePage/4 + 17, 5 * hugePage / 4} {
		s := Make[float32](n)
		if len(s) != n || cap(s) != n {
			t.Fatalf("Make(%d): length %d, capacity %d", n, len(s), cap(s))
		}
		if n*4 >= hugePage && uintptr(unsafe.Pointer(unsafe.SliceData(s)))%hugePage != 0 {
			t.Errorf("Make(%d) starts at %p, not on a huge page", n, unsafe.SliceData(s))
		}
		for i, v := range s {
			if v != 0 {
				t.Fatalf("Make(%d)[%d] = %v, want 0", n, i, v)
			}
			s[i] = float32(i)
		}
		for i, v := range s {
			if v != float32(i) {
				t.Fatalf("Make(%d)[%d] = %v after writing %d", n, i, v, i)
			}
		}
	}
	odd := Make[[3]byte](hugePage) // an element size that does not divide a huge page
	if len(odd) != hugePage || cap(odd) != hugePage {
		t.Fatalf("Make[[3]byte](%d): length %d, capacity %d", hugePage, len(odd), cap(odd))
	}
}
