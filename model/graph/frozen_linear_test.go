package graph

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/internal/blas"
	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
)

// graphFrozenCases are a dense and an NF4 weight whose row count spans
// several tiles and rounds, the last ones partial (In = 40 gives three tiles
// of at most 234 rows, two per round on two CPUs).
func graphFrozenCases(t *testing.T) []*model.Linear {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 12))
	const out, in = 700, 40
	dense := graphRandomMatrix(rng, out, in, 0.2).Float32s()
	q, err := nf4.Quantize(dense, out, in, nf4.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return []*model.Linear{
		{Name: "dense", Out: out, In: in, Dense: dense},
		{Name: "nf4", Out: out, In: in, Quantized: q},
	}
}

func TestFrozenLinearForwardMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, lin := range graphFrozenCases(t) {
		w := graphDenseRows(lin)
		// Up to mulTSmallRows rows take the quantized format's own MulT,
		// more the tiles.
		for _, n := range []int{1, mulTSmallRows, mulTSmallRows + 1, 9} {
			x := graphRandomMatrix(rng, n, lin.In, 1)
			y, err := newFrozenLinearOp(lin, nil).Do(x)
			if err != nil {
				t.Fatal(err)
			}
			got := y.Data().([]float32)
			var worst float64
			for r := range n {
				want := graphRefMatVec(w, graphF64(x.Float32s()[r*lin.In:(r+1)*lin.In]))
				for o, v := range want {
					worst = math.Max(worst, math.Abs(v-float64(got[r*lin.Out+o])))
				}
			}
			if worst > 1e-5 {
				t.Errorf("%s, %d rows: differs from x·Wᵀ by %g", lin.Name, n, worst)
			}
		}
	}
}

// TestFrozenLinearGradient checks dX against central differences through a
// dense and an NF4 weight. The function is linear in X, so the differences
// are exact up to rounding.
func TestFrozenLinearGradient(t *testing.T) {
	for _, lin := range graphFrozenCases(t) {
		t.Run(lin.Name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(15, 16))
			graphCheckOpGradient(t, []*tensor.Dense{graphRandomMatrix(rng, 6, lin.In, 1)},
				func(g *gorgonia.ExprGraph, xs gorgonia.Nodes) (*gorgonia.Node, error) {
					return frozenLinear(lin, xs[0], nil)
				}, 0.1, 1e-4)
		})
	}
}

// TestFrozenLinearHashIncludesWeight: gorgonia merges nodes whose operator
// hashes and inputs are equal, so two weights applied to one input must stay
// two nodes, even with equal names and shapes.
func TestFrozenLinearHashIncludesWeight(t *testing.T) {
	g := gorgonia.NewGraph()
	rng := rand.New(rand.NewPCG(17, 18))
	x := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(2, 3), gorgonia.WithName("x"),
		gorgonia.WithValue(graphRandomMatrix(rng, 2, 3, 1)))
	a := &model.Linear{Name: "same", Out: 4, In: 3, Dense: graphRandomMatrix(rng, 4, 3, 1).Float32s()}
	b := &model.Linear{Name: "same", Out: 4, In: 3, Dense: graphRandomMatrix(rng, 4, 3, 1).Float32s()}
	ya, err := frozenLinear(a, x, nil)
	if err != nil {
		t.Fatal(err)
	}
	yb, err := frozenLinear(b, x, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ya == yb {
		t.Fatal("two different weights on one input became one node")
	}
	m := gorgonia.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	if ya.Value().Data().([]float32)[0] == yb.Value().Data().([]float32)[0] {
		t.Error("the two products are equal")
	}
}

// TestFrozenLinearConcurrentUse runs one kernel from several goroutines (run
// with -race): the tile scratch must not be shared.
func TestFrozenLinearConcurrentUse(t *testing.T) {
	lin := graphFrozenCases(t)[1]
	k := newFrozenKernel(lin, nil)
	rng := rand.New(rand.NewPCG(19, 20))
	const n = 16
	x := graphRandomMatrix(rng, n, lin.In, 1).Float32s()
	want := make([]float32, n*lin.Out)
	if err := k.mulT(want, x, n); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	outs := make([][]float32, 8)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = make([]float32, n*lin.Out)
			for range 5 {
				if errs[i] = k.mulT(outs[i], x, n); errs[i] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, y := range outs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		for j := range y {
			if y[j] != want[j] {
				t.Fatalf("goroutine %d: element %d = %v, want %v", i, j, y[j], want[j])
			}
		}
	}
}

// TestFrozenLinearRoundsMatchReference checks both products of the NF4 case
// against float64 references at several CPU counts: one CPU makes one round
// per tile, so the gradient accumulates over rounds, and many CPUs make a
// single round.
func TestFrozenLinearRoundsMatchReference(t *testing.T) {
	lin := graphFrozenCases(t)[1]
	w := graphDenseRows(lin)
	rng := rand.New(rand.NewPCG(21, 22))
	const n = 5
	x := graphRandomMatrix(rng, n, lin.In, 1).Float32s()
	dy := graphRandomMatrix(rng, n, lin.Out, 1).Float32s()
	wantY := make([]float64, n*lin.Out)
	wantDX := make([]float64, n*lin.In)
	for r := range n {
		copy(wantY[r*lin.Out:], graphRefMatVec(w, graphF64(x[r*lin.In:(r+1)*lin.In])))
		for o, row := range w {
			for i, v := range row {
				wantDX[r*lin.In+i] += float64(dy[r*lin.Out+o]) * v
			}
		}
	}
	for _, procs := range []int{1, 2, 8} {
		t.Run(fmt.Sprint(procs, "cpu"), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			k := newFrozenKernel(lin, nil)
			if procs == 1 && k.roundRows() >= lin.Out {
				t.Fatalf("one CPU expands %d of %d rows per round, want several rounds", k.roundRows(), lin.Out)
			}
			y := make([]float32, n*lin.Out)
			dx := make([]float32, n*lin.In)
			if err := k.mulT(y, x, n); err != nil {
				t.Fatal(err)
			}
			if err := k.mul(dx, dy, n); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what string
				got  []float32
				want []float64
			}{{"x·Wᵀ", y, wantY}, {"dy·W", dx, wantDX}} {
				var worst float64
				for i, v := range c.want {
					worst = math.Max(worst, math.Abs(v-float64(c.got[i])))
				}
				if worst > 1e-4 {
					t.Errorf("%s differs from the reference by %g", c.what, worst)
				}
			}
		})
	}
}

// TestFrozenLinearScratchIsShared runs the products of many layers one after
// the other: they must reuse one scratch buffer, not keep one each (a model's
// worth of per-layer buffers outweighed what NF4 saves over float32).
func TestFrozenLinearScratchIsShared(t *testing.T) {
	// A collection would empty the pool and make the test measure the
	// collector rather than the sharing.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	q := graphFrozenCases(t)[1]
	const layers, n = 128, 9
	kernels := make([]*frozenKernel, layers)
	var scratch sync.Pool // as a Graph gives its layers
	for i := range kernels {
		kernels[i] = newFrozenKernel(&model.Linear{Name: fmt.Sprint("layer", i), Out: q.Out, In: q.In, Quantized: q.Quantized}, &scratch)
	}
	x := graphRandomMatrix(rand.New(rand.NewPCG(23, 24)), n, q.In, 1).Float32s()
	y := make([]float32, n*q.Out)
	// The first product fills the pool.
	if err := kernels[0].mulT(y, x, n); err != nil {
		t.Fatal(err)
	}
	before := frozenLargeAllocs()
	for _, k := range kernels {
		if err := k.mulT(y, x, n); err != nil {
			t.Fatal(err)
		}
	}
	// Every other allocation of a product is far smaller than a round's
	// buffer.
	if round := kernels[0].roundRows() * q.In * 4; round <= frozenSmallAllocMax {
		t.Fatalf("a round's buffer, %d bytes, does not count as a large allocation", round)
	}
	got := frozenLargeAllocs() - before
	t.Logf("%d layers allocated %d scratch buffers", layers, got)
	// With the race detector, sync.Pool drops a quarter of the buffers it is
	// given, hence the margin; per-layer buffers would make one per layer.
	if got > layers/2 {
		t.Errorf("%d layers allocated %d scratch buffers; want them to share one", layers, got)
	}
}

// frozenSmallAllocMax is the largest size MemStats.BySize counts.
var frozenSmallAllocMax = func() int {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int(m.BySize[len(m.BySize)-1].Size)
}()

// frozenLargeAllocs returns how many objects larger than frozenSmallAllocMax
// the process has allocated.
func frozenLargeAllocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	n := m.Mallocs
	for _, c := range m.BySize {
		n -= c.Mallocs
	}
	return n
}

func TestFrozenLinearRejectsBadWeights(t *testing.T) {
	q := graphFrozenCases(t)[1].Quantized
	g := gorgonia.NewGraph()
	x := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(2, 40), gorgonia.WithName("x"))
	for _, lin := range []*model.Linear{
		nil,
		{Name: "empty", Out: 700, In: 40},
		{Name: "short", Out: 700, In: 40, Dense: make([]float32, 10)},
		{Name: "both", Out: 700, In: 40, Dense: make([]float32, 700*40), Quantized: q},
		{Name: "wrong dims", Out: 40, In: 700, Quantized: q},
	} {
		if _, err := frozenLinear(lin, x, nil); err == nil {
			t.Errorf("%+v accepted", lin)
		}
	}
	wrongIn := &model.Linear{Name: "in 41", Out: 3, In: 41, Dense: make([]float32, 3*41)}
	if _, err := frozenLinear(wrongIn, x, nil); err == nil {
		t.Error("input with 40 columns accepted for a weight with In 41")
	}
}

// BenchmarkFrozenLinear times both products of stories15M's block linear
// shapes on a batch of 4 × 128 rows, with the dense float32 weight and its
// NF4 copy side by side: what NF4 adds is the expansion of its tiles.
func BenchmarkFrozenLinear(b *testing.B) {
	rng := rand.New(rand.NewPCG(25, 26))
	const n = 512
	for _, shape := range []struct{ out, in int }{{288, 288}, {768, 288}, {288, 768}} {
		w := graphRandomMatrix(rng, shape.out, shape.in, 0.05).Float32s()
		q, err := nf4.Quantize(w, shape.out, shape.in, nf4.Options{})
		if err != nil {
			b.Fatal(err)
		}
		x := graphRandomMatrix(rng, n, shape.in, 1).Float32s()
		dy := graphRandomMatrix(rng, n, shape.out, 1).Float32s()
		y := make([]float32, n*shape.out)
		dx := make([]float32, n*shape.in)
		for _, lin := range []*model.Linear{
			{Name: "dense", Out: shape.out, In: shape.in, Dense: w},
			{Name: "nf4", Out: shape.out, In: shape.in, Quantized: q},
		} {
			k := newFrozenKernel(lin, nil)
			for _, pass := range []struct {
				name string
				run  func() error
			}{
				{"forward", func() error { return k.mulT(y, x, n) }},
				{"backward", func() error { return k.mul(dx, dy, n) }},
			} {
				b.Run(fmt.Sprintf("%s/%dx%d/%s/%s", blas.Name(), shape.out, shape.in, pass.name, lin.Name), func(b *testing.B) {
					for b.Loop() {
						if err := pass.run(); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "tokens/s")
				})
			}
		}
	}
}
