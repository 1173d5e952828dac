package hugemem

import (
	"sync"
	"testing"
	"unsafe"
)

// TestArena: slices come back zeroed, aligned, disjoint and writable, the
// footprints of the slices are enough room, and Free is idempotent.
func TestArena(t *testing.T) {
	counts := []int{1, 7, 1000, 33}
	size := Footprint[float32](counts[0]) + Footprint[uint16](counts[1]) + Footprint[float32](counts[2]) + Footprint[byte](counts[3])
	a, err := NewArena(size)
	if err != nil {
		t.Fatal(err)
	}
	f1 := Alloc[float32](a, counts[0])
	h := Alloc[uint16](a, counts[1])
	f2 := Alloc[float32](a, counts[2])
	b := Alloc[byte](a, counts[3])
	for i, p := range []unsafe.Pointer{unsafe.Pointer(&f1[0]), unsafe.Pointer(&h[0]), unsafe.Pointer(&f2[0]), unsafe.Pointer(&b[0])} {
		if uintptr(p)%arenaAlign != 0 {
			t.Errorf("slice %d at %p is not aligned to %d bytes", i, p, arenaAlign)
		}
	}
	for i := range f2 {
		if f2[i] != 0 {
			t.Fatalf("f2[%d] = %v, want 0", i, f2[i])
		}
		f2[i] = float32(i)
	}
	for i := range h {
		h[i] = 0xffff
	}
	f1[0], b[len(b)-1] = -1, 7
	for i := range f2 {
		if f2[i] != float32(i) {
			t.Fatalf("f2[%d] = %v after writing %d: slices overlap", i, f2[i], i)
		}
	}
	if a.Freed() {
		t.Fatal("Freed before Free")
	}
	if err := a.Free(); err != nil {
		t.Fatal(err)
	}
	if err := a.Free(); err != nil {
		t.Fatalf("second Free: %v", err)
	}
	if !a.Freed() {
		t.Fatal("not Freed after Free")
	}
}

// TestArenaRefusesMisuse: allocating past the end or after Free panics
// instead of handing out memory that is not the arena's.
func TestArenaRefusesMisuse(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	a, err := NewArena(Footprint[float32](16))
	if err != nil {
		t.Fatal(err)
	}
	Alloc[float32](a, 16)
	mustPanic("Alloc past the end", func() { Alloc[float32](a, 1) })
	a.Free()
	mustPanic("Alloc after Free", func() { Alloc[float32](a, 1) })
	if _, err := NewArena(-1); err == nil {
		t.Error("NewArena(-1) succeeded")
	}
	empty, err := NewArena(0)
	if err != nil {
		t.Fatal(err)
	}
	if s := Alloc[float32](empty, 0); len(s) != 0 {
		t.Errorf("Alloc of 0 from an empty arena: %d elements", len(s))
	}
	if err := empty.Free(); err != nil {
		t.Fatal(err)
	}
}

// TestArenaConcurrentFree: many arenas used and freed from many goroutines
// (run with -race): Free and Freed are safe together.
func TestArenaConcurrentFree(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				a, err := NewArena(Footprint[float32](1024 * (g + 1)))
				if err != nil {
					t.Error(err)
					return
				}
				v := Alloc[float32](a, 1024*(g+1))
				v[len(v)-1] = float32(i)
				var inner sync.WaitGroup
				inner.Go(func() { _ = a.Freed() })
				inner.Go(func() { _ = a.Free() })
				inner.Wait()
				if !a.Freed() {
					t.Error("not Freed after Free")
				}
			}
		})
	}
	wg.Wait()
}
