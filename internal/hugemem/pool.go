package hugemem

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"unsafe"
)

// Pool is memory backed by huge pages that many small arenas share: the
// matrices of an adapter cache, each adapter too small (about a megabyte)
// for a huge page of its own. A decode step that reads many such arenas
// takes a TLB miss per 4 KiB page touched when each has its own mapping of
// small pages, and one per 2 MiB when they share huge pages.
//
// The pool maps chunks of huge pages as arenas need room, up to a limit,
// and carves each arena from the first free range that holds it (first fit,
// lowest chunk and address first, so that memory freed low is reused before
// a chunk is added). An arena's Free gives its range back to the pool, where
// the next arena reuses it; a chunk left empty is returned to the system
// unless it is the pool's only one. The whole huge pages of a free range
// (once merged with its free neighbours) are returned to the system too
// (on Linux), so that a pool at rest keeps resident only the huge pages its
// arenas hold; they come back, zeroed, when an arena next writes them.
//
// Its methods are safe for concurrent use.
type Pool struct {
	s *poolState
}

// poolState is the memory of a Pool, apart from it so that the cleanup that
// unmaps it when the Pool is unreachable does not keep the Pool alive. Each
// Arena from the pool keeps the Pool reachable while it lives.
type poolState struct {
	mu     sync.Mutex
	chunk  int          // bytes of a chunk, whole huge pages
	limit  int          // the most bytes mapped at once
	chunks []*poolChunk // in the order mapped
}

// poolChunk is one mapping of the pool.
type poolChunk struct {
	raw  []byte // the mapping, unmapped when the chunk goes
	mem  []byte // the huge-page-aligned part of raw that is handed out
	heap bool   // raw is Go memory (systems without mmap)
	free []span // free ranges of mem, sorted by offset, never adjacent
	// touched[i] is whether huge page i of mem may take memory and hold an
	// earlier arena's bytes: held by an arena since it was mapped or last
	// returned to the system. An arena need not clear the other pages,
	// which read as zeros.
	touched []bool
}

// used returns the bytes of c held by arenas, alignment included.
func (c *poolChunk) used() int {
	n := len(c.mem)
	for _, f := range c.free {
		n -= f.n
	}
	return n
}

// mapped returns the bytes of the chunks mapped.
func (s *poolState) mapped() int {
	n := 0
	for _, c := range s.chunks {
		n += len(c.mem)
	}
	return n
}

// span is a range of a chunk: n bytes from off, both multiples of arenaAlign.
type span struct{ off, n int }

// ErrPoolFull is wrapped by the error of Pool.NewArena when no free range
// fits and adding a chunk would map more than the pool's limit.
var ErrPoolFull = errors.New("hugemem: pool full")

// NewPool returns an empty pool that maps chunks of chunk bytes (rounded up
// to whole huge pages; an arena larger than that gets a chunk of its own
// size) and at most limit bytes (rounded up to whole chunks) in all.
func NewPool(chunk, limit int) (*Pool, error) {
	if chunk <= 0 || limit < 0 {
		return nil, fmt.Errorf("hugemem: pool of %d-byte chunks, %d bytes at most", chunk, limit)
	}
	chunk = roundUp(chunk, hugePage)
	s := &poolState{chunk: chunk, limit: roundUp(limit, chunk)}
	p := &Pool{s: s}
	runtime.AddCleanup(p, (*poolState).unmapAll, s)
	return p, nil
}

func roundUp(n, unit int) int { return (n + unit - 1) / unit * unit }

// NewArena returns an arena of size bytes from the pool's memory, reading
// as zeros like the arenas of NewArena: the huge pages of the range that
// may have held an arena before are cleared, which takes them at once;
// pool arenas are for memory that is filled whole. Its Free returns the
// range to the pool. An arena that fits in no free range and for which
// the pool cannot add a chunk within its limit is refused with an error
// wrapping ErrPoolFull.
func (p *Pool) NewArena(size int) (*Arena, error) {
	if size < 0 {
		return nil, fmt.Errorf("hugemem: arena of %d bytes", size)
	}
	if size == 0 {
		return NewArena(0)
	}
	n := roundUp(size, arenaAlign)
	c, off, dirty, err := p.s.take(n)
	if err != nil {
		return nil, err
	}
	mem := c.mem[off : off+size : off+size]
	// Outside the lock: the range is this arena's alone now. Only the
	// huge pages that may hold an earlier arena's bytes are cleared: the
	// others read as zeros already, and clearing them would fault them in
	// before the owner's writes do.
	for _, d := range dirty {
		clear(mem[max(d.off-off, 0):min(d.off+d.n-off, size)])
	}
	return &Arena{size: size, mem: mem, pool: p, chunk: c, span: span{off, n}}, nil
}

// take reserves n bytes (a multiple of arenaAlign), mapping a chunk if no
// free range holds them. It returns the runs of whole huge pages of the
// range that may hold bytes of an earlier arena, which the caller clears.
func (s *poolState) take(n int) (*poolChunk, int, []span, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.chunks {
		for i, f := range c.free {
			if f.n < n {
				continue
			}
			if f.n == n {
				c.free = slices.Delete(c.free, i, i+1)
			} else {
				c.free[i] = span{f.off + n, f.n - n}
			}
			return c, f.off, c.hold(f.off, n), nil
		}
	}
	size := max(s.chunk, roundUp(n, hugePage))
	if mapped := s.mapped(); mapped+size > s.limit {
		return nil, 0, nil, fmt.Errorf("%w: no free range of %d bytes, and a chunk of %d more would map %d of at most %d bytes",
			ErrPoolFull, n, size, mapped+size, s.limit)
	}
	// A huge page must start on a 2 MiB boundary: map one more so that
	// an aligned range of size lies inside. The pages outside it are never
	// touched and cost no memory.
	raw, heap, err := mapMemory(size + hugePage)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("hugemem: mapping a pool chunk of %d bytes: %w", size, err)
	}
	skip := 0
	if !heap {
		skip = int(-uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & (hugePage - 1))
		advise(raw[skip : skip+size])
	}
	c := &poolChunk{raw: raw, mem: raw[skip : skip+size : skip+size], heap: heap, touched: make([]bool, size/hugePage)}
	if n < size {
		c.free = []span{{n, size - n}}
	}
	s.chunks = append(s.chunks, c)
	return c, 0, c.hold(0, n), nil
}

// hold marks the huge pages that [off, off+n) touches as held, and returns
// the runs of them that were not known to read as zeros. s.mu is held.
func (c *poolChunk) hold(off, n int) []span {
	var dirty []span
	for i := off / hugePage; i*hugePage < off+n; i++ {
		if !c.touched[i] {
			c.touched[i] = true
			continue
		}
		if k := len(dirty) - 1; k >= 0 && dirty[k].off+dirty[k].n == i*hugePage {
			dirty[k].n += hugePage
		} else {
			dirty = append(dirty, span{i * hugePage, hugePage})
		}
	}
	return dirty
}

// release returns to the system the whole huge pages of the free range f
// that may be resident, where the system supports it. s.mu is held: no
// arena can be given these pages until they are released.
func (c *poolChunk) release(f span) {
	if c.heap {
		return
	}
	lo, hi := roundUp(f.off, hugePage)/hugePage, (f.off+f.n)/hugePage
	for i := lo; i < hi; {
		if !c.touched[i] {
			i++
			continue
		}
		j := i + 1
		for j < hi && c.touched[j] {
			j++
		}
		if discard(c.mem[i*hugePage : j*hugePage]) {
			clear(c.touched[i:j])
		}
		i = j
	}
}

// give returns the range sp of c to the free list, merging it with its
// neighbours, and unmaps c if it is now empty and not the only chunk.
func (s *poolState) give(c *poolChunk, sp span) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(c.free, sp.off, func(f span, off int) int { return f.off - off })
	c.free = slices.Insert(c.free, i, sp)
	if i+1 < len(c.free) && c.free[i].off+c.free[i].n == c.free[i+1].off {
		c.free[i].n += c.free[i+1].n
		c.free = slices.Delete(c.free, i+1, i+2)
	}
	if i > 0 && c.free[i-1].off+c.free[i-1].n == c.free[i].off {
		c.free[i-1].n += c.free[i].n
		c.free = slices.Delete(c.free, i, i+1)
		i--
	}
	if c.used() > 0 || len(s.chunks) == 1 {
		c.release(c.free[i])
		return nil
	}
	// Keeping the only chunk spares a cache that empties and fills again
	// a new mapping (its free huge pages went back to the system above).
	s.chunks = slices.DeleteFunc(s.chunks, func(x *poolChunk) bool { return x == c })
	return c.unmap()
}

func (c *poolChunk) unmap() error {
	raw := c.raw
	c.raw, c.mem = nil, nil
	if c.heap || raw == nil {
		return nil
	}
	if err := unmapMemory(raw); err != nil {
		return fmt.Errorf("hugemem: unmapping a pool chunk: %w", err)
	}
	return nil
}

// unmapAll returns every chunk to the system: the Pool is unreachable, so
// no arena of it is left to read them.
func (s *poolState) unmapAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.chunks {
		c.unmap() // nobody is left to tell of an error
	}
	s.chunks = nil
}

// PoolStats describes a pool's memory.
type PoolStats struct {
	Chunks int // mappings
	Mapped int // bytes mapped
	Used   int // bytes held by arenas, alignment included
	// Resident is the bytes of the huge pages that may take memory: those
	// touched by an arena since they were mapped or last returned to the
	// system. Resident - Used is what free ranges keep resident.
	Resident int
	Ranges   int // free ranges: more than Chunks says the free memory is fragmented
}

// Stats returns the pool's current use.
func (p *Pool) Stats() PoolStats {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	st := PoolStats{Chunks: len(s.chunks), Mapped: s.mapped()}
	for _, c := range s.chunks {
		st.Used += c.used()
		st.Ranges += len(c.free)
		for _, t := range c.touched {
			if t {
				st.Resident += hugePage
			}
		}
	}
	return st
}
