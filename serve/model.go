package serve

import (
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"weak"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
)

// Model runs the forward passes of the engine: a step takes every running
// request one step further at once, each with its own KV cache and adapter.
// The engine calls it from one goroutine.
type Model interface {
	// Weights returns the base model.
	Weights() *model.Weights
	// NewSequence returns an empty KV cache for one request, holding up to
	// maxLen positions.
	NewSequence(maxLen int) (Sequence, error)
	// Step runs each row's tokens at the next positions of its sequence,
	// adding the row's adapter term (none when Adapter is nil) at every
	// linear layer, and writes into each non-nil Logits [VocabSize] the
	// logits that predict the token after the row's last one, and into each
	// non-nil AllLogits [len(Tokens), VocabSize] the logits after every
	// token. The rows name distinct sequences.
	Step(rows []Row) error
}

// Sequence is the KV cache of one request.
type Sequence interface {
	// Pos returns the number of positions filled.
	Pos() int
	// Close frees the cache; the sequence is not used afterwards.
	Close()
}

// Row is one request's part of a step: a chunk of its prompt or the token it
// generated last.
type Row struct {
	Seq     Sequence
	Tokens  []int
	Adapter infer.Adapter // nil for the base model
	Logits  []float32     // nil when the logits are not needed (a prompt chunk that is not the last)
	// AllLogits, if not nil, receives the logits after every token,
	// [len(Tokens), VocabSize] (a prompt being scored).
	AllLogits []float32
}

// PerRowModel runs a step row by row, each sequence on a infer.Generator of
// its own: correct, but every row reads all the base weights again. It is the
// reference a batched Model is checked against.
type PerRowModel struct {
	w     *model.Weights
	chunk int
}

// NewPerRowModel returns a PerRowModel on w that processes prompt chunks of up
// to chunk tokens (infer.DefaultPrefillBatch when zero).
func NewPerRowModel(w *model.Weights, chunk int) *PerRowModel {
	if chunk <= 0 {
		chunk = infer.DefaultPrefillBatch
	}
	return &PerRowModel{w: w, chunk: chunk}
}

// Weights returns the base model.
func (m *PerRowModel) Weights() *model.Weights { return m.w }

// NewSequence returns a Generator-backed sequence.
func (m *PerRowModel) NewSequence(maxLen int) (Sequence, error) {
	s := &generatorSeq{}
	g, err := infer.NewGenerator(m.w, infer.GeneratorOptions{MaxLen: maxLen, PrefillBatch: min(m.chunk, maxLen), Adapter: &s.delta})
	if err != nil {
		return nil, err
	}
	s.g = g
	return s, nil
}

// Step runs the rows one after the other.
func (m *PerRowModel) Step(rows []Row) error {
	for i, r := range rows {
		s, ok := r.Seq.(*generatorSeq)
		if !ok {
			return fmt.Errorf("serve: row %d: sequence of type %T is not from this model", i, r.Seq)
		}
		s.delta.d = r.Adapter
		var logits []float32
		var err error
		if r.AllLogits != nil {
			// A token at a time: Prefill returns the last token's logits only.
			vocab := m.w.Config.VocabSize
			for t, tok := range r.Tokens {
				if logits, err = s.g.Step(tok); err != nil {
					break
				}
				copy(r.AllLogits[t*vocab:(t+1)*vocab], logits)
			}
		} else {
			logits, err = s.g.Prefill(r.Tokens)
		}
		s.delta.d = nil
		if err != nil {
			return fmt.Errorf("serve: row %d: %w", i, err)
		}
		copy(r.Logits, logits)
	}
	return nil
}

type generatorSeq struct {
	g     *infer.Generator
	delta swapDelta
}

func (s *generatorSeq) Pos() int { return s.g.Pos() }
func (s *generatorSeq) Close()   {}

// swapDelta forwards to the adapter of the row being run.
type swapDelta struct{ d infer.Adapter }

func (s *swapDelta) AddDelta(lin *model.Linear, y, x []float32, n int) error {
	if s.d == nil {
		return nil
	}
	return s.d.AddDelta(lin, y, x, n)
}

// BatchedModel runs each step as one infer.Batch step: every frozen linear
// layer is multiplied once over all the rows, each adapter's term is applied
// to its group of rows (the engine orders rows by adapter), attention is per
// row against its own KV cache.
//
// Closed sequences are kept for reuse (up to maxFreeSequences), so that a
// new request does not fault in and zero fresh memory for its KV cache;
// lengths are rounded up to a multiple of seqQuantum positions so that
// requests of different lengths share them. They are held weakly: a
// garbage collection that finds them unused frees them, so they cost no
// memory once a server has gone quiet. Trim frees them at once (the engine
// calls it once it has had nothing to run for idleTrimDelay).
type BatchedModel struct {
	b    *infer.Batch
	rows []infer.BatchRow

	mu   sync.Mutex
	free map[int][]weak.Pointer[infer.Sequence] // by capacity, the last closed last
	kept int                                    // entries of free, collected ones included
}

// seqQuantum is the multiple of positions BatchedModel's caches are
// allocated in; maxFreeSequences bounds the closed caches it keeps.
const (
	seqQuantum       = 64
	maxFreeSequences = 64
)

// NewBatchedModel returns a BatchedModel on w, any architecture the
// Generator runs (infer.Batch covers the same extensions).
func NewBatchedModel(w *model.Weights) (*BatchedModel, error) {
	b, err := infer.NewBatch(w)
	if err != nil {
		return nil, err
	}
	return &BatchedModel{b: b}, nil
}

// MaxLen returns the most positions a sequence can hold (infer.Batch.MaxLen).
func (m *BatchedModel) MaxLen() int { return m.b.MaxLen() }

// Weights returns the base model.
func (m *BatchedModel) Weights() *model.Weights { return m.b.Weights() }

// NewSequence allocates a KV cache of maxLen positions.
func (m *BatchedModel) NewSequence(maxLen int) (Sequence, error) {
	if maxLen <= 0 || maxLen > m.b.MaxLen() {
		return nil, fmt.Errorf("serve: NewSequence: length %d must be in [1, %d]", maxLen, m.b.MaxLen())
	}
	capacity := min(m.b.MaxLen(), (maxLen+seqQuantum-1)/seqQuantum*seqQuantum)
	m.mu.Lock()
	for l := m.free[capacity]; len(l) > 0; l = m.free[capacity] {
		s := l[len(l)-1].Value()
		m.free[capacity] = l[:len(l)-1]
		m.kept--
		if s != nil {
			m.mu.Unlock()
			s.Reset()
			return &batchSeq{Sequence: s, m: m}, nil
		}
	}
	m.mu.Unlock()
	s, err := m.b.NewSequence(capacity)
	if err != nil {
		return nil, err
	}
	return &batchSeq{Sequence: s, m: m}, nil
}

// Trim frees the closed sequences kept for reuse and the Batch's scratch
// (infer.Batch.Trim), and returns the free memory of the Go heap to the
// system (debug.FreeOSMemory): what a burst of requests left behind (their
// logits buffers, the sampler's scratch, the step's scratch, adapters
// evicted from the cache) would otherwise stay resident until the runtime's scavenger gets
// to it, up to the heap's next collection goal. The collection this forces
// costs a few milliseconds on a server's small heap (the base, the adapter
// cache and the KV caches live outside it), once per quiet period. Trim
// must not run concurrently with Step (the engine calls both from its
// goroutine).
func (m *BatchedModel) Trim() {
	m.b.Trim()
	m.rows = nil
	m.mu.Lock()
	free := m.free
	m.free, m.kept = nil, 0
	m.mu.Unlock()
	for _, l := range free {
		for _, p := range l {
			if s := p.Value(); s != nil {
				s.Free()
			}
		}
	}
	debug.FreeOSMemory()
}

// keep takes back a closed sequence for reuse, if there is room (once the
// entries the collector has emptied are dropped).
func (m *BatchedModel) keep(s *infer.Sequence) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.kept >= maxFreeSequences {
		for c, l := range m.free {
			live := slices.DeleteFunc(l, func(p weak.Pointer[infer.Sequence]) bool { return p.Value() == nil })
			m.kept -= len(l) - len(live)
			m.free[c] = live
		}
		if m.kept >= maxFreeSequences {
			s.Free()
			return
		}
	}
	if m.free == nil {
		m.free = make(map[int][]weak.Pointer[infer.Sequence])
	}
	m.free[s.MaxLen()] = append(m.free[s.MaxLen()], weak.Make(s))
	m.kept++
}

// Workers and Parallel lend the Batch's goroutines to the engine's draws
// (infer.Batch.Parallel).
func (m *BatchedModel) Workers() int { return m.b.Workers() }

// Parallel calls fn(worker, i) for i in [0, n) on the Batch's goroutines.
func (m *BatchedModel) Parallel(n int, fn func(worker, i int)) { m.b.Parallel(n, fn) }

// Step runs the rows as one batch.
func (m *BatchedModel) Step(rows []Row) error {
	m.rows = m.rows[:0]
	for i, r := range rows {
		s, ok := r.Seq.(*batchSeq)
		if !ok || s.Sequence == nil {
			return fmt.Errorf("serve: row %d: sequence of type %T is not from this model", i, r.Seq)
		}
		m.rows = append(m.rows, infer.BatchRow{Seq: s.Sequence, Tokens: r.Tokens, Adapter: r.Adapter, Logits: r.Logits, AllLogits: r.AllLogits})
	}
	err := m.b.Step(m.rows)
	clear(m.rows) // finished requests' caches and adapters are not kept alive
	return err
}

type batchSeq struct {
	*infer.Sequence
	m *BatchedModel
}

// Close gives the cache back to the model; the sequence is not used again.
func (s *batchSeq) Close() {
	if s.Sequence != nil {
		s.m.keep(s.Sequence)
		s.Sequence = nil
	}
}
