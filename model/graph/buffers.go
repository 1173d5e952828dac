package graph

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
