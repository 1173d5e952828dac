package infer

import (
	"errors"
	"runtime"
	"sync"

	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/model"
)

// rangeMulT is a quantized format that computes the part of its product
// given by a range of weight rows on the calling goroutine without
// allocating (nf4.Matrix.MulTRows), so that a decode step can split it.
type rangeMulT interface {
	MulTRows(y, x []float32, n, start, end int) error
}

// A single-row product is split by weight rows over GOMAXPROCS goroutines
// when its weight has at least splitMinWeights values, in parts of at least
// splitMinRows rows whose boundaries are multiples of splitAlign. Waking a
// parked worker costs a few microseconds, about what 2¹⁶ multiply-adds take
// on one core.
const (
	splitMinWeights = 1 << 16
	splitMinRows    = 64
	splitAlign      = 16
)

// rowTask is one part of a split product: weight rows [start, end) of lin
// for the single row x.
type rowTask struct {
	lin        *model.Linear
	y, x       []float32
	start, end int
	err        *error
	done       *sync.WaitGroup
}

// run computes the task's part into y and reports its error.
func (t rowTask) run() {
	*t.err = mulRows(t.lin, t.y, t.x, t.start, t.end)
	t.done.Done()
}

// mulRows computes entries [start, end) of y = x·Wᵀ for a single row x.
func mulRows(lin *model.Linear, y, x []float32, start, end int) error {
	if lin.Dense == nil {
		return lin.Quantized.(rangeMulT).MulTRows(y, x, 1, start, end)
	}
	in := lin.In
	kernels.DenseMulT(y[start:end], x, lin.Dense[start*in:end*in], 1, in, end-start)
	return nil
}

// rowWorkers are a Generator's helper goroutines for split products. They
// start on first use (one fewer than the parts of a product: the caller
// computes one part itself) and stop when the Generator is collected. Tasks
// and errors pass by value through a channel and preallocated slots, so a
// split product does not allocate.
type rowWorkers struct {
	tasks   chan rowTask
	started int
	done    sync.WaitGroup
	errs    []error // one slot per part
}

// newRowWorkers returns the workers of owner; closing their channel when
// owner is collected ends them.
func newRowWorkers(owner *Generator) *rowWorkers {
	w := &rowWorkers{tasks: make(chan rowTask, 16)}
	runtime.AddCleanup(owner, func(tasks chan rowTask) { close(tasks) }, w.tasks)
	return w
}

// canSplit reports whether lin's single-row product can be split by rows:
// dense weights and formats with MulTRows.
func canSplit(lin *model.Linear) bool {
	if lin.Dense != nil {
		return true
	}
	_, ok := lin.Quantized.(rangeMulT)
	return ok
}

// parts returns the number of parts a single-row product with lin, which
// canSplit, is split into; 1 means it runs on the calling goroutine.
func (w *rowWorkers) parts(lin *model.Linear) int {
	if lin.Out*lin.In < splitMinWeights {
		return 1
	}
	return max(1, min(runtime.GOMAXPROCS(0), lin.Out/splitMinRows))
}

// mulT computes y = x·Wᵀ for a single row x in parts pieces, the first on
// the calling goroutine.
func (w *rowWorkers) mulT(lin *model.Linear, y, x []float32, parts int) error {
	if parts <= 1 {
		return mulRows(lin, y, x, 0, lin.Out)
	}
	for ; w.started < parts-1; w.started++ {
		go rowWorker(w.tasks)
	}
	if len(w.errs) < parts {
		w.errs = make([]error, parts)
	}
	units := (lin.Out + splitAlign - 1) / splitAlign
	bound := func(p int) int { return min(lin.Out, units*p/parts*splitAlign) }
	w.done.Add(parts - 1)
	for p := 1; p < parts; p++ {
		w.tasks <- rowTask{lin: lin, y: y, x: x, start: bound(p), end: bound(p + 1), err: &w.errs[p], done: &w.done}
	}
	w.errs[0] = mulRows(lin, y, x, 0, bound(1))
	w.done.Wait()
	return errors.Join(w.errs[:parts]...)
}

// rowWorker runs tasks until its channel is closed.
func rowWorker(tasks <-chan rowTask) {
	for t := range tasks {
		t.run()
	}
}
