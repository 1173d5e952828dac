package hugemem

import (
	"errors"
	"sync"
	"testing"
	"unsafe"
)

// base returns the address of a's memory.
func base(a *Arena) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(a.mem))) }

// TestPoolReusesFreedRanges: arenas pack one after another in a chunk that
// starts on a huge page; a freed range goes to the next arena that fits, which
// reads zeros whatever the previous one wrote.
func TestPoolReusesFreedRanges(t *testing.T) {
	p, err := NewPool(hugePage, 4*hugePage)
	if err != nil {
		t.Fatal(err)
	}
	const size = 100_000 // not a multiple of the alignment
	var as []*Arena
	for range 3 {
		a, err := p.NewArena(size)
		if err != nil {
			t.Fatal(err)
		}
		v := Alloc[float32](a, size/4)
		for i := range v {
			v[i] = 1
		}
		as = append(as, a)
	}
	if base(as[0])%hugePage != 0 {
		t.Errorf("first arena at %#x, not on a huge page", base(as[0]))
	}
	step := uintptr(Footprint[byte](size))
	if base(as[1]) != base(as[0])+step || base(as[2]) != base(as[1])+step {
		t.Errorf("arenas at %#x %#x %#x, want %d bytes apart", base(as[0]), base(as[1]), base(as[2]), step)
	}
	mid := base(as[1])
	as[1].Free()
	if err := as[1].Free(); err != nil { // a second Free gives nothing back twice
		t.Fatal(err)
	}
	again, err := p.NewArena(size - 1000)
	if err != nil {
		t.Fatal(err)
	}
	if base(again) != mid {
		t.Errorf("arena after a free at %#x, want the freed range at %#x", base(again), mid)
	}
	for i, v := range Alloc[float32](again, (size-1000)/4) {
		if v != 0 {
			t.Fatalf("reused range: element %d = %v, want 0", i, v)
		}
	}
	if st := p.Stats(); st.Chunks != 1 || st.Used != 3*Footprint[byte](size)-Footprint[byte](size)+Footprint[byte](size-1000) {
		t.Errorf("stats %+v", st)
	}
}

// TestPoolMergesFreeRanges: ranges freed side by side merge, so an arena as
// large as two of them fits where they were instead of taking a new chunk;
// and freeing everything leaves one free range per chunk.
func TestPoolMergesFreeRanges(t *testing.T) {
	p, err := NewPool(hugePage, hugePage)
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 10
	var as []*Arena
	for range hugePage / size {
		a, err := p.NewArena(size)
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, a)
	}
	if _, err := p.NewArena(1); !errors.Is(err, ErrPoolFull) {
		t.Fatalf("a full pool at its limit: %v, want ErrPoolFull", err)
	}
	start := base(as[0])
	// Free every other arena: 16 holes of size, none larger.
	for i := 0; i < len(as); i += 2 {
		as[i].Free()
	}
	if st := p.Stats(); st.Ranges != len(as)/2 {
		t.Errorf("%d free ranges after freeing every other arena, want %d", st.Ranges, len(as)/2)
	}
	if _, err := p.NewArena(2 * size); !errors.Is(err, ErrPoolFull) {
		t.Fatalf("an arena larger than every hole: %v, want ErrPoolFull", err)
	}
	// Freeing a neighbour merges three ranges into one.
	as[5].Free()
	big, err := p.NewArena(3 * size)
	if err != nil {
		t.Fatal(err)
	}
	if base(big) != start+4*size {
		t.Errorf("merged range at offset %d, want %d", base(big)-start, 4*size)
	}
	big.Free()
	for i := 1; i < len(as); i += 2 {
		as[i].Free()
	}
	if st := p.Stats(); st.Ranges != 1 || st.Used != 0 || st.Chunks != 1 {
		t.Errorf("stats after freeing everything %+v, want one free range in the one chunk kept", st)
	}
}

// TestPoolGrowsAndShrinks: a pool adds chunks as arenas need them, up to its
// limit, gives an arena larger than a chunk a chunk of its own, and unmaps a
// chunk once it is empty, keeping the last.
func TestPoolGrowsAndShrinks(t *testing.T) {
	p, err := NewPool(hugePage, 8*hugePage)
	if err != nil {
		t.Fatal(err)
	}
	a1, err := p.NewArena(hugePage - 4096)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := p.NewArena(8192) // does not fit the rest of the first chunk
	if err != nil {
		t.Fatal(err)
	}
	large, err := p.NewArena(3*hugePage + 1) // a chunk of 4 huge pages
	if err != nil {
		t.Fatal(err)
	}
	if base(large)%hugePage != 0 {
		t.Errorf("a chunk's arena at %#x, not on a huge page", base(large))
	}
	v := Alloc[byte](large, 3*hugePage+1)
	v[0], v[len(v)-1] = 1, 2
	if st := p.Stats(); st.Chunks != 3 || st.Mapped != 6*hugePage {
		t.Errorf("stats %+v, want 3 chunks, %d bytes mapped", st, 6*hugePage)
	}
	if _, err := p.NewArena(2*hugePage + 1); !errors.Is(err, ErrPoolFull) {
		t.Errorf("an arena past the limit: %v, want ErrPoolFull", err)
	}
	large.Free()
	a2.Free()
	if st := p.Stats(); st.Chunks != 1 || st.Mapped != hugePage {
		t.Errorf("stats after freeing the later chunks' arenas %+v, want only the first chunk", st)
	}
	a1.Free()
	if st := p.Stats(); st.Chunks != 1 || st.Used != 0 {
		t.Errorf("stats with nothing held %+v, want the one chunk kept, empty", st)
	}
	// Chunks and limit round up: a pool for less than a huge page still
	// maps one.
	small, err := NewPool(1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := small.NewArena(3000); err != nil || base(a)%hugePage != 0 {
		t.Errorf("an arena of a pool of 1000-byte chunks: %v", err)
	}
	if _, err := NewPool(0, 1); err == nil {
		t.Error("NewPool with chunks of 0 bytes succeeded")
	}
	if _, err := p.NewArena(-1); err == nil {
		t.Error("NewArena(-1) succeeded")
	}
}

// TestPoolConcurrent (run with -race): goroutines take, fill, check and free
// arenas of many sizes at once; no arena sees another's writes.
func TestPoolConcurrent(t *testing.T) {
	p, err := NewPool(hugePage, 64*hugePage)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			var held []*Arena
			for i := range 200 {
				a, err := p.NewArena(4096 * (1 + (g*7+i)%40))
				if err != nil {
					t.Error(err)
					return
				}
				v := Alloc[uint32](a, a.Size()/4)
				for k := range v {
					v[k] = uint32(g)<<24 | uint32(i)
				}
				held = append(held, a)
				if len(held) > 4 {
					old := held[0]
					held = held[1:]
					old.Free()
				}
				for k, x := range v {
					if x != uint32(g)<<24|uint32(i) {
						t.Errorf("goroutine %d arena %d: element %d = %#x", g, i, k, x)
						return
					}
				}
			}
			for _, a := range held {
				a.Free()
			}
		})
	}
	wg.Wait()
	if st := p.Stats(); st.Used != 0 {
		t.Errorf("stats with every arena freed %+v", st)
	}
}
