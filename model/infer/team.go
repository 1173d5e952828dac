package infer

import (
	"errors"
	"runtime"
	"sync/atomic"
	"time"
)

// A team runs the chunks of a decode step's split work (a product's ranges
// of weight rows, attention's heads) on its helper goroutines and the
// calling one. A decode step of a small model is some fifty products of a
// few microseconds each: waking a parked goroutine for each (a channel send,
// then a futex) costs about as much as the work. So a helper, once woken,
// spins for up to spinLimit polls (tens of microseconds) before it parks
// again: within a step every product finds it awake, and an idle Generator
// costs no CPU.
//
// Chunks are claimed, not assigned: the caller and the helpers take the next
// unclaimed chunk until none is left, and the caller then waits only for
// chunks a helper is running. On a machine busier than its cores, where a
// helper may not be running at all, the caller does the work itself rather
// than wait for it. A chunk's error is kept by the goroutine that ran it,
// so collecting the errors takes no lock.
type team struct {
	// state is seq<<32 | chunks<<16 | next: the job's sequence number, its
	// number of chunks and the next chunk to claim. A claim is a
	// compare-and-swap of the whole word, so it never takes a chunk of an
	// earlier job.
	state atomic.Uint64
	_     [56]byte // keep claims off the line of the fields below
	// done counts, per worker, the chunks of the current job it has run,
	// each on a cache line of its own: a chunk's end is a write to the
	// worker's own line, not to one both cores fight over.
	done []counter
	// fn runs one chunk. It is written only while no chunk is claimed and
	// read only by a goroutine holding a claim.
	fn   func(worker, chunk int) error
	errs []error // per worker: the current job's errors
	stop atomic.Bool
	// held is set while a caller runs a sequence of jobs with serial code
	// between them (a Batch step): the helpers then spin on past spinLimit
	// instead of parking. Between two jobs of a 32-row step the caller
	// runs for longer than spinLimit polls (norms, adapter plans, a
	// shrink), and a parked helper, woken by a futex, came to a job tens of
	// microseconds late or after the caller had run all of it alone.
	held    atomic.Bool
	helpers []*helper
}

// maxChunks is the most chunks a job can have (state's 16-bit fields).
const maxChunks = 1<<16 - 1

// spinLimit is the number of polls a helper makes for work before it
// parks, and the caller for the helpers' chunks to return before it yields
// its thread between polls: tens of microseconds.
const spinLimit = 1 << 14

// counter is an atomic count alone on its cache line.
type counter struct {
	n atomic.Int64
	_ [56]byte
}

// helper is one goroutine of a team.
type helper struct {
	parked atomic.Bool
	wake   chan struct{} // capacity 1: a send never blocks
	_      [64]byte      // keep the helpers' flags on separate cache lines
}

// startTeam returns a team of GOMAXPROCS−1 helpers that closes once owner
// is unreachable, or nil with GOMAXPROCS 1.
func startTeam[T any](owner *T) *team {
	procs := runtime.GOMAXPROCS(0)
	if procs <= 1 {
		return nil
	}
	t := newTeam(procs - 1)
	runtime.AddCleanup(owner, func(t *team) { t.close() }, t)
	return t
}

// newTeam returns a team of n helpers, started now; call close to end them.
func newTeam(n int) *team {
	t := &team{helpers: make([]*helper, n), errs: make([]error, n+1), done: make([]counter, n+1)}
	for i := range t.helpers {
		h := &helper{wake: make(chan struct{}, 1)}
		t.helpers[i] = h
		go t.loop(h, i+1)
	}
	return t
}

// size returns the number of goroutines that work on a job: the helpers
// and the caller; 1 for a nil team.
func (t *team) size() int {
	if t == nil {
		return 1
	}
	return len(t.helpers) + 1
}

// run calls fn(worker, chunk) for chunk 0 … chunks−1, 1 ≤ chunks ≤
// maxChunks, on the helpers and the calling goroutine, and returns when all
// have returned. worker, in [0, size()), tells the goroutines apart (0 is
// the caller), for scratch space of their own. It returns the chunks'
// errors joined.
func (t *team) run(chunks int, fn func(worker, chunk int) error) error {
	t.fn = fn
	for w := range t.done {
		t.done[w].n.Store(0)
	}
	seq := t.state.Load()>>32 + 1
	t.state.Store(seq<<32 | uint64(chunks)<<16)
	t.wakeHelpers()
	t.work(0)
	for spins := 0; t.finished() != int64(chunks); spins++ {
		if spins >= spinLimit {
			runtime.Gosched()
		}
	}
	// fn refers to the Generator: the team must not keep it alive.
	t.fn = nil
	var err error
	for w, e := range t.errs {
		if e != nil {
			err = errors.Join(err, e)
			t.errs[w] = nil
		}
	}
	return err
}

// finished returns the number of chunks of the current job that have
// returned.
func (t *team) finished() int64 {
	var n int64
	for w := range t.done {
		n += t.done[w].n.Load()
	}
	return n
}

// wakeHelpers wakes the parked helpers.
func (t *team) wakeHelpers() {
	for _, h := range t.helpers {
		if h.parked.CompareAndSwap(true, false) {
			h.wake <- struct{}{}
		}
	}
}

// pending reports whether the current job has an unclaimed chunk.
func (t *team) pending() bool {
	s := t.state.Load()
	return s&0xffff < s>>16&0xffff
}

// work claims and runs chunks of the current job as worker until none is
// left.
func (t *team) work(worker int) {
	for {
		s := t.state.Load()
		if s&0xffff >= s>>16&0xffff {
			return
		}
		if !t.state.CompareAndSwap(s, s+1) {
			continue
		}
		if err := t.fn(worker, int(s&0xffff)); err != nil {
			t.errs[worker] = errors.Join(t.errs[worker], err)
		}
		// Only this worker writes its count.
		d := &t.done[worker].n
		d.Store(d.Load() + 1)
	}
}

// hold keeps the helpers from parking between jobs until release, and
// wakes the parked ones now: their wake-up overlaps the caller's work
// before its first job. The caller must call release when its jobs are
// done, so that an idle team parks. A nil team ignores both.
func (t *team) hold() {
	if t == nil {
		return
	}
	t.held.Store(true)
	t.wakeHelpers()
}

// release ends hold.
func (t *team) release() {
	if t != nil {
		t.held.Store(false)
	}
}

// close ends the helpers once they finish their current chunk.
func (t *team) close() {
	t.stop.Store(true)
	t.wakeHelpers()
}

// loop is helper h's goroutine, worker number worker: it works on every
// job until close.
func (t *team) loop(h *helper, worker int) {
	for !t.stop.Load() {
		if t.spin() {
			t.work(worker)
			continue
		}
		h.parked.Store(true)
		if t.pending() || t.stop.Load() {
			if h.parked.CompareAndSwap(true, false) {
				continue
			}
			// The caller saw parked and is sending a wake-up: take it, or
			// the next park would return at once.
		}
		<-h.wake
	}
}

// heldSpin is how long a helper of a held team polls for the next job
// before it parks all the same: far longer than the caller's serial code
// between two jobs of a step, far shorter than the time slice another
// process takes when the machine is busier than its cores, when the caller
// may wait for a core for milliseconds.
const heldSpin = 200 * time.Microsecond

// spin polls for a job with an unclaimed chunk and reports whether one
// came: false after spinLimit polls, or if the team is held, after
// heldSpin. While held, it yields every spinLimit polls its goroutine, so
// that other goroutines (a server's stream readers) still get to run, and
// its thread: on a machine busier than its cores, a poll that kept its
// core would take a core's share from the caller (a 32-row step ran at
// two thirds of its speed).
func (t *team) spin() bool {
	var start time.Time
	for polls := 0; ; polls++ {
		if t.pending() {
			return true
		}
		if polls >= spinLimit {
			if !t.held.Load() || t.stop.Load() {
				return false
			}
			if start.IsZero() {
				start = time.Now()
			} else if time.Since(start) > heldSpin {
				return false
			}
			polls = 0
			runtime.Gosched()
			osYield()
		}
	}
}
