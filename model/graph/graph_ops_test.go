package graph

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// graphRandomMatrix returns a [rows, cols] float32 tensor of N(0, std²)
// values.
func graphRandomMatrix(rng *rand.Rand, rows, cols int, std float64) *tensor.Dense {
	data := make([]float32, rows*cols)
	for i := range data {
		data[i] = float32(std * rng.NormFloat64())
	}
	return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(data))
}

// graphCheckOpGradient checks the symbolic gradient of an operator against
// central differences. build applies the operator to input nodes holding
// inputs; the checked function is L = Σ c ⊙ y for fixed random c (or y itself
// when it is a scalar), evaluated in float64 from y. Every coordinate of every
// input is checked; errors are relative to the largest gradient component of
// that input.
func graphCheckOpGradient(t *testing.T, inputs []*tensor.Dense, build func(g *gorgonia.ExprGraph, xs gorgonia.Nodes) (*gorgonia.Node, error), eps, tol float64) {
	t.Helper()
	g := gorgonia.NewGraph()
	xs := make(gorgonia.Nodes, len(inputs))
	for i, in := range inputs {
		xs[i] = gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(in.Shape()...),
			gorgonia.WithName(fmt.Sprintf("x%d", i)), gorgonia.WithValue(in))
	}
	y, err := build(g, xs)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(99, 1))
	var cost *gorgonia.Node
	var c []float32
	if y.IsScalar() {
		cost = y
	} else {
		ct := graphRandomMatrix(rng, y.Shape()[0], y.Shape()[1], 1)
		c = ct.Float32s()
		cn := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(y.Shape()...), gorgonia.WithName("c"), gorgonia.WithValue(ct))
		cost = gorgonia.Must(gorgonia.Sum(gorgonia.Must(gorgonia.HadamardProd(y, cn))))
	}
	grads, err := gorgonia.Grad(cost, xs...)
	if err != nil {
		t.Fatal(err)
	}
	m := gorgonia.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	analytic := make([][]float32, len(grads))
	for i, gn := range grads {
		analytic[i] = append([]float32(nil), gn.Value().Data().([]float32)...)
	}

	fwd := gorgonia.NewTapeMachine(g.SubgraphRoots(y))
	defer fwd.Close()
	value := func() float64 {
		fwd.Reset()
		if err := fwd.RunAll(); err != nil {
			t.Fatal(err)
		}
		if c == nil {
			v, err := opScalar(y.Value(), crossEntropyOp{}, "cost")
			if err != nil {
				t.Fatal(err)
			}
			return float64(v)
		}
		var s float64
		for i, v := range y.Value().Data().([]float32) {
			s += float64(v) * float64(c[i])
		}
		return s
	}
	for i, in := range inputs {
		x := in.Float32s()
		var scale float64
		for _, v := range analytic[i] {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		if scale == 0 {
			t.Fatalf("input %d: gradient is identically zero", i)
		}
		var worst float64
		for j := range x {
			old := x[j]
			x[j] = old + float32(eps)
			plus := value()
			x[j] = old - float32(eps)
			minus := value()
			x[j] = old
			num := (plus - minus) / (2 * eps)
			e := math.Abs(num-float64(analytic[i][j])) / scale
			worst = math.Max(worst, e)
			if e > tol {
				t.Fatalf("input %d element %d: analytic %.6g, numeric %.6g (error %.2g of the largest %.3g)", i, j, analytic[i][j], num, e, scale)
			}
		}
		t.Logf("input %d: worst error %.2g of the largest gradient %.3g over %d elements", i, worst, scale, len(x))
	}
}

func TestGraphRMSNormGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	w := graphRandomMatrix(rng, 1, 12, 0.3).Float32s()
	for i := range w {
		w[i]++
	}
	graphCheckOpGradient(t, []*tensor.Dense{graphRandomMatrix(rng, 5, 12, 1)},
		func(g *gorgonia.ExprGraph, xs gorgonia.Nodes) (*gorgonia.Node, error) {
			return applyRMSNorm(xs[0], w, 1e-5, "norm", nil)
		}, 1e-2, 1e-3)
}

func TestGraphSwiGLUGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	graphCheckOpGradient(t, []*tensor.Dense{graphRandomMatrix(rng, 6, 7, 2), graphRandomMatrix(rng, 6, 7, 1)},
		func(g *gorgonia.ExprGraph, xs gorgonia.Nodes) (*gorgonia.Node, error) {
			return applySwiGLU(xs[0], xs[1], nil)
		}, 1e-2, 1e-3)
}

// TestGraphAddGradient checks the arena Add against central differences, for
// two inputs and for one node added to itself (whose gradient is twice the
// output's), and its values against the sum.
func TestGraphAddGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	x, y := graphRandomMatrix(rng, 6, 7, 2), graphRandomMatrix(rng, 6, 7, 1)
	graphCheckOpGradient(t, []*tensor.Dense{x, y},
		func(g *gorgonia.ExprGraph, xs gorgonia.Nodes) (*gorgonia.Node, error) {
			return applyAdd(xs[0], xs[1], nil)
		}, 1e-2, 1e-3)
	graphCheckOpGradient(t, []*tensor.Dense{x},
		func(g *gorgonia.ExprGraph, xs gorgonia.Nodes) (*gorgonia.Node, error) {
			return applyAdd(xs[0], xs[0], nil)
		}, 1e-2, 1e-3)
	z, err := addOp{}.Do(x, y)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range z.Data().([]float32) {
		if want := x.Float32s()[i] + y.Float32s()[i]; v != want {
			t.Fatalf("element %d = %v, want %v", i, v, want)
		}
	}
	if _, err := (addOp{}).Do(x, graphRandomMatrix(rng, 7, 6, 1)); err == nil {
		t.Error("Add of [6 7] and [7 6] accepted")
	}
}

func TestGraphAttentionGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	s := attentionShape{batch: 2, seqLen: 5, heads: 4, kvHeads: 2, headDim: 4}
	op := newAttentionOp(s, nil)
	graphCheckOpGradient(t, []*tensor.Dense{
		graphRandomMatrix(rng, s.rows(), s.qWidth(), 1.5),
		graphRandomMatrix(rng, s.rows(), s.kvWidth(), 1.5),
		graphRandomMatrix(rng, s.rows(), s.kvWidth(), 1),
	}, func(g *gorgonia.ExprGraph, xs gorgonia.Nodes) (*gorgonia.Node, error) {
		return applyAttention(op, xs[0], xs[1], xs[2])
	}, 1e-2, 2e-3)
}

// TestGraphAttentionMatchesLoops checks the attention operator's output
// against direct loops, including that no position sees a later one.
func TestGraphAttentionMatchesLoops(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	s := attentionShape{batch: 3, seqLen: 7, heads: 6, kvHeads: 3, headDim: 6}
	q := graphRandomMatrix(rng, s.rows(), s.qWidth(), 1)
	k := graphRandomMatrix(rng, s.rows(), s.kvWidth(), 1)
	v := graphRandomMatrix(rng, s.rows(), s.kvWidth(), 1)
	out, err := newAttentionOp(s, nil).Do(q, k, v)
	if err != nil {
		t.Fatal(err)
	}
	got := out.Data().([]float32)
	qd, kd, vd := q.Float32s(), k.Float32s(), v.Float32s()
	var worst float64
	for b := range s.batch {
		for h := range s.heads {
			kvh := h / s.group()
			for i := range s.seqLen {
				r := b*s.seqLen + i
				w := make([]float64, i+1)
				var sum float64
				for j := range w {
					var dot float64
					for e := range s.headDim {
						dot += float64(qd[r*s.qWidth()+h*s.headDim+e]) * float64(kd[(b*s.seqLen+j)*s.kvWidth()+kvh*s.headDim+e])
					}
					w[j] = math.Exp(dot / math.Sqrt(float64(s.headDim)))
					sum += w[j]
				}
				for e := range s.headDim {
					var want float64
					for j := range w {
						want += w[j] / sum * float64(vd[(b*s.seqLen+j)*s.kvWidth()+kvh*s.headDim+e])
					}
					worst = math.Max(worst, math.Abs(want-float64(got[r*s.qWidth()+h*s.headDim+e])))
				}
			}
		}
	}
	if worst > 1e-5 {
		t.Errorf("attention differs from the loops by %g", worst)
	}
}
