package graph

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/internal/blas"
	"github.com/golora/golora/internal/gemm"
	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
)

// graphFrozenCases are a dense, an NF4 and an INT8 weight (INT8 cannot
// decode a block of columns: its products go through whole rows), with
// enough rows for the products to be split over goroutines.
func graphFrozenCases(t *testing.T) []*model.Linear {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 12))
	const out, in = 700, 40
	dense := graphRandomMatrix(rng, out, in, 0.2).Float32s()
	q, err := nf4.Quantize(dense, out, in, nf4.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q8, err := quant.QuantizeInt8(dense, out, in, 64)
	if err != nil {
		t.Fatal(err)
	}
	return []*model.Linear{
		{Name: "dense", Out: out, In: in, Dense: dense},
		{Name: "nf4", Out: out, In: in, Quantized: q},
		{Name: "int8", Out: out, In: in, Quantized: q8},
	}
}

func TestFrozenLinearForwardMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, lin := range graphFrozenCases(t) {
		w := graphDenseRows(lin)
		// Up to mulTSmallRows rows take the quantized format's own MulT,
		// more the matrix product.
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
// with -race): nothing of one product may be shared with another.
func TestFrozenLinearConcurrentUse(t *testing.T) {
	lin := graphFrozenCases(t)[1]
	k := newFrozenKernel(lin)
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

// TestFrozenLinearMatchesExpandedWeight checks both products of each
// quantized case at several CPU counts: they have the bits of the same
// product with the expanded weight, and match float64 references.
func TestFrozenLinearMatchesExpandedWeight(t *testing.T) {
	for _, lin := range graphFrozenCases(t)[1:] {
		w := graphDenseRows(lin)
		expanded := make([]float32, lin.Out*lin.In)
		if err := lin.Quantized.DequantizeRows(expanded, 0, lin.Out); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(21, 22))
		const n = 37
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
			t.Run(fmt.Sprint(lin.Name, "/", procs, "cpu"), func(t *testing.T) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				k := newFrozenKernel(lin)
				y := make([]float32, n*lin.Out)
				dx := make([]float32, n*lin.In)
				if err := k.mulT(y, x, n); err != nil {
					t.Fatal(err)
				}
				if err := k.mul(dx, dy, n); err != nil {
					t.Fatal(err)
				}
				expY := make([]float32, n*lin.Out)
				expDX := make([]float32, n*lin.In)
				gemm.Sgemm(false, true, n, lin.Out, lin.In, 1, x, lin.In, expanded, lin.In, 0, expY, lin.Out)
				gemm.Sgemm(false, false, n, lin.In, lin.Out, 1, dy, lin.Out, expanded, lin.In, 0, expDX, lin.In)
				for _, c := range []struct {
					what     string
					got, exp []float32
					want     []float64
				}{{"x·Wᵀ", y, expY, wantY}, {"dy·W", dx, expDX, wantDX}} {
					var worst float64
					for i, v := range c.want {
						worst = math.Max(worst, math.Abs(v-float64(c.got[i])))
						if math.Float32bits(c.got[i]) != math.Float32bits(c.exp[i]) {
							t.Fatalf("%s: element %d = %v, %v with the expanded weight", c.what, i, c.got[i], c.exp[i])
						}
					}
					if worst > 1e-4 {
						t.Errorf("%s differs from the reference by %g", c.what, worst)
					}
				}
			})
		}
	}
}

// TestFrozenLinearAllocatesNoExpandedWeight runs the products of many layers
// one after the other: once warm, none may allocate a buffer the size of a
// weight (a model's worth of expanded weights would outweigh what NF4 saves
// over float32).
func TestFrozenLinearAllocatesNoExpandedWeight(t *testing.T) {
	// A collection would empty the pools the products draw on and make the
	// test measure the collector.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	q := graphFrozenCases(t)[1]
	if size := q.Out * q.In * 4; size <= frozenSmallAllocMax {
		t.Fatalf("the expanded weight, %d bytes, does not count as a large allocation", size)
	}
	const layers, n = 64, 9
	kernels := make([]*frozenKernel, layers)
	for i := range kernels {
		kernels[i] = newFrozenKernel(&model.Linear{Name: fmt.Sprint("layer", i), Out: q.Out, In: q.In, Quantized: q.Quantized})
	}
	x := graphRandomMatrix(rand.New(rand.NewPCG(23, 24)), n, q.In, 1).Float32s()
	dy := graphRandomMatrix(rand.New(rand.NewPCG(23, 25)), n, q.Out, 1).Float32s()
	y := make([]float32, n*q.Out)
	dx := make([]float32, n*q.In)
	run := func(k *frozenKernel) {
		if err := k.mulT(y, x, n); err != nil {
			t.Fatal(err)
		}
		if err := k.mul(dx, dy, n); err != nil {
			t.Fatal(err)
		}
	}
	run(kernels[0])
	before := frozenLargeAllocs()
	for _, k := range kernels {
		run(k)
	}
	if got := frozenLargeAllocs() - before; got > 0 {
		t.Errorf("%d layers allocated %d large buffers", layers, got)
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

// BenchmarkFrozenLinear times both products of stories15M's and
// Llama-3.2-1B's block linear shapes (q_proj, up_proj, down_proj) on a batch
// of 4 × 128 rows, with the dense float32 weight and its NF4 copy taking
// turns within each iteration (what NF4 adds is decoding while packing). It
// reports each one's fastest run, the figure least disturbed by the other
// processes of a shared machine, and their ratio.
func BenchmarkFrozenLinear(b *testing.B) {
	rng := rand.New(rand.NewPCG(25, 26))
	const n = 512
	for _, shape := range []struct{ out, in int }{{288, 288}, {768, 288}, {288, 768}, {2048, 2048}, {8192, 2048}, {2048, 8192}} {
		w := graphRandomMatrix(rng, shape.out, shape.in, 0.05).Float32s()
		q, err := nf4.Quantize(w, shape.out, shape.in, nf4.Options{})
		if err != nil {
			b.Fatal(err)
		}
		x := graphRandomMatrix(rng, n, shape.in, 1).Float32s()
		dy := graphRandomMatrix(rng, n, shape.out, 1).Float32s()
		y := make([]float32, n*shape.out)
		dx := make([]float32, n*shape.in)
		kernels := []*frozenKernel{
			newFrozenKernel(&model.Linear{Name: "dense", Out: shape.out, In: shape.in, Dense: w}),
			newFrozenKernel(&model.Linear{Name: "nf4", Out: shape.out, In: shape.in, Quantized: q}),
		}
		for _, pass := range []struct {
			name string
			run  func(k *frozenKernel) error
		}{
			{"forward", func(k *frozenKernel) error { return k.mulT(y, x, n) }},
			{"backward", func(k *frozenKernel) error { return k.mul(dx, dy, n) }},
		} {
			b.Run(fmt.Sprintf("%s/%dx%d/%s", blas.Name(), shape.out, shape.in, pass.name), func(b *testing.B) {
				best := make([]time.Duration, len(kernels))
				for b.Loop() {
					for i, k := range kernels {
						t0 := time.Now()
						if err := pass.run(k); err != nil {
							b.Fatal(err)
						}
						if d := time.Since(t0); best[i] == 0 || d < best[i] {
							best[i] = d
						}
					}
				}
				for i, k := range kernels {
					b.ReportMetric(float64(best[i].Microseconds()), k.lin.Name+"-µs")
				}
				b.ReportMetric(best[1].Seconds()/best[0].Seconds(), "nf4/dense")
			})
		}
	}
}
