package graph

import "sync"

// Buffers lets the operators an Adapter adds to a Graph draw their outputs
// and scratch from the graph's arena, as the graph's own operators do, so
// that the graph's machine reclaims an output once the last operator reading
// it has run, and the following operators reuse the memory. An operator
// that owned its buffers instead would hold them for the graph's lifetime.
//
// The zero Buffers, for operators run outside a Graph, allocates and
// releases nothing.
type Buffers struct{ arena *graphArena }

// Floats returns a buffer of n values, with arbitrary contents: the caller
// overwrites every element it reads. The buffer is the operator's until the
// next run of the graph starts; an operator that returns it as the backing
// of its output value hands it to the machine, which gives it back after
// the output's last reader.
func (b Buffers) Floats(n int) []float32 { return b.arena.floats(n) }

// Release gives back buf, which Floats returned, for the operators that
// follow: an operator calls it on its scratch before returning. buf must not
// be used afterwards, nor back the operator's output.
func (b Buffers) Release(buf []float32) {
	if len(buf) > 0 {
		b.arena.release(&buf[0])
	}
}

// BufferedAdapter is an Adapter whose operators take their buffers from the
// Graph: New calls UseBuffers once, before the first Delta, with the
// graph's Buffers.
type BufferedAdapter interface {
	Adapter
	UseBuffers(Buffers)
}

// graphArena hands out the output buffers of a Graph's operators and takes
// them all back when the next run starts, so that a training step reuses the
// previous step's memory: allocating fresh [batch·seqLen, vocab] logits and
// their gradient every step costs page faults and garbage collection worth a
// sizeable fraction of the step. Operators built outside a Graph have a nil
// arena and allocate.
type graphArena struct {
	mu   sync.Mutex
	free map[int][]*[]float32
	used []*[]float32
	// usedAt indexes used by each buffer's first element, so that release,
	// called once per value a run drops, does not scan every buffer the run
	// holds.
	usedAt map[*float32]int
}

func newGraphArena() *graphArena {
	return &graphArena{free: map[int][]*[]float32{}, usedAt: map[*float32]int{}}
}

// floats returns a buffer of n values, valid until the next reset. Its
// contents are arbitrary: callers overwrite every element.
func (a *graphArena) floats(n int) []float32 {
	if a == nil {
		return make([]float32, n)
	}
	if n == 0 {
		// Nothing to reuse, and no first element to find it by.
		return []float32{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if l := a.free[n]; len(l) > 0 {
		p := l[len(l)-1]
		a.free[n] = l[:len(l)-1]
		a.use(p)
		return *p
	}
	buf := make([]float32, n)
	a.use(&buf)
	return buf
}

// use records p as handed out.
func (a *graphArena) use(p *[]float32) {
	a.usedAt[&(*p)[0]] = len(a.used)
	a.used = append(a.used, p)
}

// reset makes every buffer handed out so far available again.
func (a *graphArena) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.used {
		a.free[len(*p)] = append(a.free[len(*p)], p)
	}
	clear(a.used)
	a.used = a.used[:0]
	clear(a.usedAt)
}

// release gives back a buffer that floats handed out in this run, found by
// its first element, so that later calls can return it again; it does
// nothing for memory the arena did not hand out.
func (a *graphArena) release(p *float32) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	i, ok := a.usedAt[p]
	if !ok {
		return
	}
	b, last := a.used[i], len(a.used)-1
	moved := a.used[last]
	a.used[i], a.used[last] = moved, nil
	a.used = a.used[:last]
	a.usedAt[&(*moved)[0]] = i
	delete(a.usedAt, p)
	a.free[len(*b)] = append(a.free[len(*b)], b)
}
