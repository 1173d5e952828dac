package infer

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/golora/golora/internal/hugemem"
)

// A Batch's KV caches live outside the Go heap, in one hugemem.Arena per
// Sequence sized for its maxLen positions. Two things follow. The system
// provides the pages as positions are first written, so a cache reserved for
// a request's prompt plus its max_tokens costs only the positions the request
// reaches (the engine still budgets the reservation: that is its admission
// rule). And the garbage collector's heap goal does not grow with the caches
// of the running requests: a server's heap headroom scales with its own
// garbage.
//
// The memory is returned by Sequence.Free, or, for a sequence dropped
// without Free, once the Sequence is unreachable (a cleanup: nothing can
// reach its keys and values then).

// ErrSequenceFreed is the error of a Step on a Sequence whose memory Free
// returned.
var ErrSequenceFreed = errors.New("infer: sequence used after Free")

// allocKV gives s its keys and values for s.maxLen positions.
func (b *Batch) allocKV(s *Sequence) error {
	per := s.maxLen * b.kvDim
	mem, err := hugemem.NewArena(2 * len(s.keys) * hugemem.Footprint[float32](per))
	if err != nil {
		return fmt.Errorf("infer: KV cache of %d positions: %w", s.maxLen, err)
	}
	for l := range s.keys {
		s.keys[l] = hugemem.Alloc[float32](mem, per)
		s.values[l] = hugemem.Alloc[float32](mem, per)
	}
	s.mem = mem
	runtime.AddCleanup(s, func(m *hugemem.Arena) { m.Free() }, mem)
	return nil
}

// Free returns the sequence's cache memory to the system. The sequence must
// not be used afterwards: a Step on it is refused with ErrSequenceFreed.
// Calls after the first do nothing.
func (s *Sequence) Free() {
	s.keys, s.values = nil, nil
	if s.mem != nil {
		s.mem.Free()
	}
}

// usable reports a sequence that was freed.
func (s *Sequence) usable() error {
	if s.mem != nil && s.mem.Freed() {
		return ErrSequenceFreed
	}
	return nil
}
