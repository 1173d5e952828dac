package hugemem

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Elem is the element types an Arena hands out: plain numbers. Memory
// outside the Go heap is not scanned by the garbage collector, so it must
// never hold a Go pointer.
type Elem interface {
	~uint8 | ~uint16 | ~uint32 | ~uint64 | ~int8 | ~int16 | ~int32 | ~int64 | ~float32 | ~float64
}

// Arena is a block of memory outside the Go heap (an anonymous private
// mapping on Unix systems, or a range of a Pool's) that slices are carved
// from and that is given back all at once by Free.
//
// Memory the garbage collector does not own does not count in its pacing: a
// server holding gigabytes of long-lived weights in arenas lets the Go heap
// grow only by its own garbage (GOGC's 100% of a few megabytes), not by the
// size of the weights. The price is an explicit lifetime: a slice from Alloc
// must not be used after Free — reading it then faults or, worse, reads
// memory the system or the Pool has since handed to someone else. Owners
// keep the arena with the slices and check Freed where a stale reference
// could reach them.
//
// Pages are taken from the system as they are first written, so an arena
// sized for the most a sequence may need costs only what it uses.
//
// Its methods are safe for concurrent use.
type Arena struct {
	mu    sync.Mutex
	mem   []byte // nil once freed, or for an empty arena
	off   int
	size  int
	freed atomic.Bool // read without the lock: a check on every use of the memory
	heap  bool        // mem is Go memory (systems without mmap, or empty)
	// For an arena of a Pool: the range of the pool's chunk that mem is,
	// given back by Free.
	pool  *Pool
	chunk *poolChunk
	span  span
}

// arenaAlign is the alignment of every slice Alloc returns: a cache line, so
// that vector loads of one matrix never straddle a neighbour's line.
const arenaAlign = 64

// NewArena maps size bytes (rounded up to whole pages) outside the Go heap.
// The memory reads as zeros.
func NewArena(size int) (*Arena, error) {
	if size < 0 {
		return nil, fmt.Errorf("hugemem: arena of %d bytes", size)
	}
	a := &Arena{size: size}
	if size == 0 {
		a.heap = true
		return a, nil
	}
	mem, heap, err := mapMemory(size)
	if err != nil {
		return nil, fmt.Errorf("hugemem: mapping an arena of %d bytes: %w", size, err)
	}
	a.mem, a.heap = mem, heap
	return a, nil
}

// NewHugeArena is NewArena, asking the kernel to back the arena with
// transparent huge pages (see Make): for memory that is filled whole at
// once, not for memory touched a page at a time as it is needed.
func NewHugeArena(size int) (*Arena, error) {
	a, err := NewArena(size)
	if err == nil && !a.heap && size >= minBytes {
		advise(a.mem)
	}
	return a, err
}

// Size returns the bytes asked for when the arena was made.
func (a *Arena) Size() int { return a.size }

// Alloc returns n zeroed elements of T from a, aligned to 64 bytes. It
// panics if a has been freed or has no room left: the owner sizes the arena
// for everything it carves from it.
func Alloc[T Elem](a *Arena, n int) []T {
	var zero T
	bytes := n * int(unsafe.Sizeof(zero))
	if n == 0 {
		return []T{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.freed.Load() {
		panic("hugemem: Alloc from a freed arena")
	}
	start := (a.off + arenaAlign - 1) &^ (arenaAlign - 1)
	if n < 0 || start+bytes > a.size {
		panic(fmt.Sprintf("hugemem: Alloc of %d bytes at offset %d overflows an arena of %d", bytes, start, a.size))
	}
	a.off = start + bytes
	return unsafe.Slice((*T)(unsafe.Pointer(&a.mem[start])), n)
}

// Free returns the arena's memory to the system, or to its Pool, which hands
// it to the next arena. Every slice carved from it becomes invalid. Calls
// after the first do nothing.
func (a *Arena) Free() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.freed.Load() {
		return nil
	}
	a.freed.Store(true)
	mem := a.mem
	a.mem = nil
	if a.pool != nil {
		return a.pool.s.give(a.chunk, a.span)
	}
	if a.heap || mem == nil {
		return nil
	}
	if err := unmapMemory(mem); err != nil {
		return fmt.Errorf("hugemem: unmapping an arena of %d bytes: %w", a.size, err)
	}
	return nil
}

// Freed reports whether Free has been called.
func (a *Arena) Freed() bool { return a.freed.Load() }

// Copy returns a copy of v in a.
func Copy[T Elem](a *Arena, v []T) []T {
	c := Alloc[T](a, len(v))
	copy(c, v)
	return c
}

// Footprint returns the arena bytes n elements of T take, alignment
// included: an arena of the sum of the footprints of its slices holds them.
func Footprint[T Elem](n int) int {
	var zero T
	return (n*int(unsafe.Sizeof(zero)) + arenaAlign - 1) &^ (arenaAlign - 1)
}
