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
// unless it is the pool's only one.
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
// as zeros like the arenas of NewArena, but with every page taken at once
// (the range is cleared, as it may have held an arena before): pool arenas
// are for memory that is filled whole. Its Free returns the range to the
// pool. An arena that fits in no free range and for which the pool cannot
// add a chunk within its limit is refused with an error wrapping
// ErrPoolFull.
func (p *Pool) NewArena(size int) (*Arena, error) {
	if size < 0 {
		return nil, fmt.Errorf("hugemem: arena of %d bytes", size)
	}
	if size == 0 {
		return NewArena(0)
	}
	n := roundUp(size, arenaAlign)
	c, off, err := p.s.take(n)
	if err != nil {
		return nil, err
	}
	mem := c.mem[off : off+size : off+size]
	// Outside the lock: the range is this arena's alone now.
	clear(mem)
	return &Arena{size: size, mem: mem, pool: p, chunk: c, span: span{off, n}}, nil
}

// take reserves n bytes (a multiple of arenaAlign), mapping a chunk if no
// free range holds them.
func (s *poolState) take(n int) (*poolChunk, int, error) {
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
			return c, f.off, nil
		}
	}
	size := max(s.chunk, roundUp(n, hugePage))
	if mapped := s.mapped(); mapped+size > s.limit {
		return nil, 0, fmt.Errorf("%w: no free range of %d bytes, and a chunk of %d more would map %d of at most %d bytes",
			ErrPoolFull, n, size, mapped+size, s.limit)
	}
	// A huge page must start on a 2 MiB boundary: map one more so that
	// an aligned range of size lies inside. The pages outside it are never
	// touched and cost no memory.
	raw, heap, err := mapMemory(size + hugePage)
	if err != nil {
		return nil, 0, fmt.Errorf("hugemem: mapping a pool chunk of %d bytes: %w", size, err)
	}
	skip := 0
	if !heap {
		skip = int(-uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & (hugePage - 1))
		advise(raw[skip : skip+size])
	}
	c := &poolChunk{raw: raw, mem: raw[skip : skip+size : skip+size], heap: heap}
	if n < size {
		c.free = []span{{n, size - n}}
	}
	s.chunks = append(s.chunks, c)
	return c, 0, nil
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
	}
	if c.used() > 0 || len(s.chunks) == 1 {
		return nil
	}
	// Keeping the only chunk spares a cache that empties and fills again
	// the mapping and the page faults.
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
	Ranges int // free ranges: more than Chunks says the free memory is fragmented
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
	}
	return st
}
