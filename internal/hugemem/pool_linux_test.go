package hugemem

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentPages returns how many of the 4 KiB pages of b are resident
// (mincore).
func residentPages(t *testing.T, b []byte) int {
	t.Helper()
	page := unix.Getpagesize()
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if start%uintptr(page) != 0 || len(b)%page != 0 {
		t.Fatalf("mincore of %d bytes at %#x: not whole pages", len(b), start)
	}
	vec := make([]byte, len(b)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, start, uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// TestPoolReturnsFreeHugePages: the whole huge pages of a freed range go
// back to the system (mincore no longer finds them, Stats no longer counts
// them), pages partly held by a live arena stay, fresh pages are not
// touched by handing them out, and memory handed out again reads as zeros
// whether it was returned or only cleared.
func TestPoolReturnsFreeHugePages(t *testing.T) {
	p, err := NewPool(4*hugePage, 4*hugePage)
	if err != nil {
		t.Fatal(err)
	}
	const pages = hugePage / 4096
	// a takes huge pages 0 and 1 (half of 1), b the other half of 1 and 2.
	a, err := p.NewArena(hugePage + hugePage/2)
	if err != nil {
		t.Fatal(err)
	}
	chunk := p.s.chunks[0].mem
	if n := residentPages(t, chunk); n != 0 {
		t.Errorf("%d pages resident after handing out fresh memory, want none", n)
	}
	b, err := p.NewArena(hugePage)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*Arena{a, b} {
		v := Alloc[byte](x, x.Size())
		for i := range v {
			v[i] = 0xff
		}
	}
	if st := p.Stats(); st.Resident != 3*hugePage {
		t.Errorf("stats with two arenas on 3 huge pages %+v, want %d bytes resident", st, 3*hugePage)
	}
	if n := residentPages(t, chunk[:3*hugePage]); n != 3*pages {
		t.Fatalf("%d pages resident after writing 3 huge pages, want %d", n, 3*pages)
	}
	at := base(a)
	a.Free()
	if n := residentPages(t, chunk[:hugePage]); n != 0 {
		t.Errorf("%d pages of the freed huge page still resident", n)
	}
	if n := residentPages(t, chunk[hugePage:3*hugePage]); n != 2*pages {
		t.Errorf("%d pages resident of the 2 huge pages b holds, want %d", n, 2*pages)
	}
	if st := p.Stats(); st.Resident != 2*hugePage {
		t.Errorf("stats after freeing a %+v, want %d bytes resident", st, 2*hugePage)
	}
	// The freed range again: its first huge page was returned, its second
	// is half b's and was cleared.
	c, err := p.NewArena(hugePage + hugePage/2)
	if err != nil {
		t.Fatal(err)
	}
	if base(c) != at {
		t.Fatalf("arena at %#x, want the freed range at %#x", base(c), at)
	}
	for i, v := range Alloc[byte](c, c.Size()) {
		if v != 0 {
			t.Fatalf("reused range: byte %d = %#x, want 0", i, v)
		}
	}
	b.Free()
	c.Free()
	if n := residentPages(t, chunk); n != 0 {
		t.Errorf("%d pages resident with every arena freed, want none", n)
	}
	if st := p.Stats(); st.Resident != 0 || st.Used != 0 || st.Chunks != 1 {
		t.Errorf("stats with every arena freed %+v, want the chunk kept with nothing resident", st)
	}
}
