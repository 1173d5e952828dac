package infer

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestTeamRunsEveryChunkOnce: every chunk of every job runs exactly once,
// with worker numbers in range, whether the helpers are awake, parked
// (after a pause longer than their spin), held (jobs 120 to 259) or starved
// of CPUs (GOMAXPROCS 1), and close ends the helpers.
func TestTeamRunsEveryChunkOnce(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	before := runtime.NumGoroutine()
	tm := newTeam(3)
	var counts [100]atomic.Int32
	var badWorker atomic.Bool
	for job := range 300 {
		switch job {
		case 100:
			runtime.GOMAXPROCS(1)
		case 200:
			runtime.GOMAXPROCS(4)
		case 120:
			tm.hold()
		case 260:
			tm.release()
		}
		if job%50 == 0 {
			time.Sleep(2 * time.Millisecond) // the helpers park
		}
		chunks := 1 + job%len(counts)
		tm.run(chunks, func(worker, chunk int) error {
			if worker < 0 || worker >= tm.size() {
				badWorker.Store(true)
			}
			counts[chunk].Add(1)
			return nil
		})
		for c := range counts {
			want := int32(0)
			if c < chunks {
				want = 1
			}
			if got := counts[c].Swap(0); got != want {
				t.Fatalf("job %d (%d chunks): chunk %d ran %d times, want %d", job, chunks, c, got, want)
			}
		}
	}
	if badWorker.Load() {
		t.Error("a chunk ran with a worker number outside [0, size())")
	}
	tm.close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after close, %d before the team", n, before)
	}
}

// TestTeamHeldParks: a held team's helper still parks when no job comes
// for heldSpin (its caller descheduled on a busy machine), and wakes for
// the next job; a nil team (GOMAXPROCS 1) ignores hold and release.
func TestTeamHeldParks(t *testing.T) {
	var none *team
	none.hold()
	none.release()
	tm := newTeam(1)
	defer tm.close()
	tm.hold()
	defer tm.release()
	var ran atomic.Int32
	job := func(int, int) error { ran.Add(1); return nil }
	tm.run(4, job)
	deadline := time.Now().Add(5 * time.Second)
	for !tm.helpers[0].parked.Load() && time.Now().Before(deadline) {
		time.Sleep(heldSpin)
	}
	if !tm.helpers[0].parked.Load() {
		t.Fatal("a held helper with no job did not park")
	}
	tm.run(4, job)
	if got := ran.Load(); got != 8 {
		t.Errorf("%d chunks ran, want 8", got)
	}
}

// TestTeamJoinsChunkErrors: run returns the errors of the job's failing
// chunks, whichever goroutine ran them, and none of them is left over for
// the next job.
func TestTeamJoinsChunkErrors(t *testing.T) {
	tm := newTeam(2)
	defer tm.close()
	errA, errB := errors.New("chunk 2"), errors.New("chunk 5")
	err := tm.run(8, func(_, chunk int) error {
		switch chunk {
		case 2:
			return errA
		case 5:
			return errB
		}
		return nil
	})
	if !errors.Is(err, errA) || !errors.Is(err, errB) {
		t.Errorf("run returned %v, want both chunks' errors", err)
	}
	if err := tm.run(8, func(int, int) error { return nil }); err != nil {
		t.Errorf("the next job returned %v, want nil", err)
	}
}

// BenchmarkTeamRun measures a job's hand-off: 8 chunks of a few hundred
// nanoseconds' work each on a team of one helper and the caller, about
// the cost of claiming, running and waiting for them.
func BenchmarkTeamRun(b *testing.B) {
	t := newTeam(1)
	defer t.close()
	var sink [2][64]float32
	work := func(worker, chunk int) error {
		s := &sink[worker]
		for i := range 200 {
			s[i%64] += float32(i)
		}
		return nil
	}
	b.ResetTimer()
	for b.Loop() {
		if err := t.run(8, work); err != nil {
			b.Fatal(err)
		}
	}
}
