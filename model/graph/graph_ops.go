package graph

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/internal/parallel"
)

// This file holds the helpers shared by the custom gorgonia operators of the
// forward graph, and the small element-wise operators (RMSNorm, SwiGLU and
// column extraction).

// opHash is the Hashcode of an operator: FNV-1a over its WriteHash.
func opHash(op interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

func opCheckInputs(op fmt.Stringer, inputs []gorgonia.Value, want int) error {
	if len(inputs) != want {
		return fmt.Errorf("graph: %v: got %d inputs, want %d", op, len(inputs), want)
	}
	return nil
}

// opRowsShape is InferShape for an operator mapping [n, in] to [n, out].
func opRowsShape(op fmt.Stringer, inputs []gorgonia.DimSizer, in, out int) (tensor.Shape, error) {
	if len(inputs) != 1 {
		return nil, fmt.Errorf("graph: %v: got %d input shapes, want 1", op, len(inputs))
	}
	s, ok := inputs[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("graph: %v: input shape is a %T, not a tensor.Shape", op, inputs[0])
	}
	if len(s) != 2 || s[1] != in {
		return nil, fmt.Errorf("graph: %v: input shape %v, want [n, %d]", op, s, in)
	}
	return tensor.Shape{s[0], out}, nil
}

// opFloats returns the row-major float32 elements of a tensor value, copying
// a non-contiguous view into fresh memory, and its shape.
func opFloats(v gorgonia.Value, op fmt.Stringer, what string) ([]float32, tensor.Shape, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, nil, fmt.Errorf("graph: %v: %s is a %T, want a float32 tensor", op, what, v)
	}
	if d.Dtype() != tensor.Float32 {
		return nil, nil, fmt.Errorf("graph: %v: %s has dtype %v, want float32", op, what, d.Dtype())
	}
	if d.RequiresIterator() {
		d = d.Materialize().(*tensor.Dense)
	}
	n := d.Shape().TotalSize()
	data := d.Float32s()
	if len(data) < n {
		return nil, nil, fmt.Errorf("graph: %v: %s holds %d values for shape %v", op, what, len(data), d.Shape())
	}
	return data[:n], d.Shape(), nil
}

// opRows returns the elements of a [n, cols] float32 matrix value and n.
func opRows(v gorgonia.Value, cols int, op fmt.Stringer, what string) ([]float32, int, error) {
	data, s, err := opFloats(v, op, what)
	if err != nil {
		return nil, 0, err
	}
	if len(s) != 2 || s[1] != cols {
		return nil, 0, fmt.Errorf("graph: %v: %s has shape %v, want [n, %d]", op, what, s, cols)
	}
	return data, s[0], nil
}

// opScalar returns the value of a float32 scalar (a gorgonia *F32 or a
// one-element tensor).
func opScalar(v gorgonia.Value, op fmt.Stringer, what string) (float32, error) {
	switch s := v.(type) {
	case *gorgonia.F32:
		return float32(*s), nil
	case *tensor.Dense:
		if s.Dtype() == tensor.Float32 && s.Shape().TotalSize() == 1 {
			return s.Float32s()[0], nil
		}
	}
	return 0, fmt.Errorf("graph: %v: %s is a %T %v, want a float32 scalar", op, what, v, v.Shape())
}

func opMatrix(data []float32, rows, cols int) *tensor.Dense {
	return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(data))
}

// opUnaryFloat provides the methods shared by the single-input float32
// operators below.
type opUnaryFloat struct{}

func (opUnaryFloat) Arity() int { return 1 }

func (opUnaryFloat) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a)
}

func (opUnaryFloat) ReturnsPtr() bool     { return false }
func (opUnaryFloat) CallsExtern() bool    { return false }
func (opUnaryFloat) OverwritesInput() int { return -1 }

// opSameShape is InferShape for operators whose output has the shape of their
// first input.
func opSameShape(op fmt.Stringer, inputs []gorgonia.DimSizer, arity int) (tensor.Shape, error) {
	if len(inputs) != arity {
		return nil, fmt.Errorf("graph: %v: got %d input shapes, want %d", op, len(inputs), arity)
	}
	s, ok := inputs[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("graph: %v: input shape is a %T, not a tensor.Shape", op, inputs[0])
	}
	return s.Clone(), nil
}

// rmsNormOp is y = x / sqrt(mean(x²) + eps) · w over the rows of x, with the
// weight w frozen on the Go side. It is written as one operator rather than
// from gorgonia's primitives because gorgonia's InverseSqrt has a wrong
// gradient, and because one pass over each row is much cheaper than the half
// dozen broadcast nodes the primitives need.
type rmsNormOp struct {
	opUnaryFloat
	name   string
	weight []float32
	eps    float64
	arena  *graphArena
}

// applyRMSNorm applies root-mean-square normalization with the frozen per-feature
// weight to each row of x ([n, len(weight)]).
func applyRMSNorm(x *gorgonia.Node, weight []float32, eps float64, name string, arena *graphArena) (*gorgonia.Node, error) {
	if len(weight) == 0 {
		return nil, fmt.Errorf("graph: RMSNorm %s: empty weight", name)
	}
	y, err := gorgonia.ApplyOp(&rmsNormOp{name: name, weight: weight, eps: eps, arena: arena}, x)
	if err != nil {
		return nil, fmt.Errorf("graph: RMSNorm %s: %w", name, err)
	}
	return y, nil
}

func (op *rmsNormOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	return opRowsShape(op, inputs, len(op.weight), len(op.weight))
}

func (op *rmsNormOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 1); err != nil {
		return nil, err
	}
	d := len(op.weight)
	x, n, err := opRows(inputs[0], d, op, "input")
	if err != nil {
		return nil, err
	}
	y := op.arena.floats(len(x))
	parallel.For(n, 64, 1, func(lo, hi int) {
		kernels.RMSNorm(y[lo*d:hi*d], x[lo*d:hi*d], op.weight, op.eps)
	})
	return opMatrix(y, n, d), nil
}

func (op *rmsNormOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "RMSNorm{%s,%p,%g}", op.name, op.weight, op.eps)
}

func (op *rmsNormOp) Hashcode() uint32 { return opHash(op) }
func (op *rmsNormOp) String() string   { return fmt.Sprintf("RMSNorm{%s}", op.name) }

func (op *rmsNormOp) DiffWRT(inputs int) []bool { return []bool{true} }

func (op *rmsNormOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	dx, err := gorgonia.ApplyOp(&rmsNormGradOp{fwd: op}, inputs[0], grad)
	if err != nil {
		return nil, fmt.Errorf("graph: gradient of %v: %w", op, err)
	}
	return gorgonia.Nodes{dx}, nil
}

// rmsNormGradOp maps (x, dy) to dx (kernels.RMSNormBackward).
type rmsNormGradOp struct{ fwd *rmsNormOp }

func (op *rmsNormGradOp) Arity() int { return 2 }

func (op *rmsNormGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, a)
}

func (op *rmsNormGradOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	return opSameShape(op, inputs, 2)
}

func (op *rmsNormGradOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 2); err != nil {
		return nil, err
	}
	d := len(op.fwd.weight)
	x, n, err := opRows(inputs[0], d, op, "input")
	if err != nil {
		return nil, err
	}
	dy, ny, err := opRows(inputs[1], d, op, "output gradient")
	if err != nil {
		return nil, err
	}
	if ny != n {
		return nil, fmt.Errorf("graph: %v: %d gradient rows for %d input rows", op, ny, n)
	}
	dx := op.fwd.arena.floats(len(x))
	parallel.For(n, 64, 1, func(lo, hi int) {
		kernels.RMSNormBackward(dx[lo*d:hi*d], x[lo*d:hi*d], dy[lo*d:hi*d], op.fwd.weight, op.fwd.eps)
	})
	return opMatrix(dx, n, d), nil
}

func (op *rmsNormGradOp) ReturnsPtr() bool     { return false }
func (op *rmsNormGradOp) CallsExtern() bool    { return false }
func (op *rmsNormGradOp) OverwritesInput() int { return -1 }

func (op *rmsNormGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "RMSNormGrad{%s,%p,%g}", op.fwd.name, op.fwd.weight, op.fwd.eps)
}

func (op *rmsNormGradOp) Hashcode() uint32 { return opHash(op) }
func (op *rmsNormGradOp) String() string   { return fmt.Sprintf("RMSNormGrad{%s}", op.fwd.name) }

// swigluOp is silu(gate) ⊙ up, the gating of LLaMA's MLP.
type swigluOp struct{ arena *graphArena }

// applySwiGLU returns silu(gate) ⊙ up for two nodes of equal shape.
func applySwiGLU(gate, up *gorgonia.Node, arena *graphArena) (*gorgonia.Node, error) {
	if !gate.Shape().Eq(up.Shape()) {
		return nil, fmt.Errorf("graph: SwiGLU: gate shape %v differs from up shape %v", gate.Shape(), up.Shape())
	}
	y, err := gorgonia.ApplyOp(swigluOp{arena: arena}, gate, up)
	if err != nil {
		return nil, fmt.Errorf("graph: SwiGLU: %w", err)
	}
	return y, nil
}

func (swigluOp) Arity() int { return 2 }

func (swigluOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, a)
}

func (op swigluOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	return opSameShape(op, inputs, 2)
}

func (op swigluOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 2); err != nil {
		return nil, err
	}
	g, u, s, err := opTwoSameShape(op, inputs[0], inputs[1], "gate", "up")
	if err != nil {
		return nil, err
	}
	y := op.arena.floats(len(g))
	inChunks(len(g), func(lo, hi int) {
		kernels.SwiGLU(y[lo:hi], g[lo:hi], u[lo:hi])
	})
	return tensor.New(tensor.WithShape(s.Clone()...), tensor.WithBacking(y)), nil
}

func (swigluOp) ReturnsPtr() bool          { return false }
func (swigluOp) CallsExtern() bool         { return false }
func (swigluOp) OverwritesInput() int      { return -1 }
func (swigluOp) WriteHash(h hash.Hash)     { fmt.Fprint(h, "SwiGLU") }
func (op swigluOp) Hashcode() uint32       { return opHash(op) }
func (swigluOp) String() string            { return "SwiGLU" }
func (swigluOp) DiffWRT(inputs int) []bool { return []bool{true, true} }

func (op swigluOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	// Two operators rather than one with two outputs: gorgonia operators have
	// a single result, and recomputing the sigmoid is cheaper than the
	// slicing a packed result would need.
	dg, err := gorgonia.ApplyOp(swigluGradOp{wrtGate: true, arena: op.arena}, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("graph: SwiGLU gradient: %w", err)
	}
	du, err := gorgonia.ApplyOp(swigluGradOp{wrtGate: false, arena: op.arena}, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("graph: SwiGLU gradient: %w", err)
	}
	return gorgonia.Nodes{dg, du}, nil
}

// inChunks runs fn on consecutive ranges of [0, n), spread over the
// available CPUs.
func inChunks(n int, fn func(lo, hi int)) { parallel.For(n, 1<<14, 1, fn) }

// swigluGradOp maps (gate, up, dy) to the gradient with respect to the gate,
// dy·up·σ(g)·(1 + g·(1 − σ(g))), or to up, dy·silu(g).
type swigluGradOp struct {
	wrtGate bool
	arena   *graphArena
}

func (swigluGradOp) Arity() int { return 3 }

func (swigluGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, a, a)
}

func (op swigluGradOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	return opSameShape(op, inputs, 3)
}

func (op swigluGradOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 3); err != nil {
		return nil, err
	}
	g, u, s, err := opTwoSameShape(op, inputs[0], inputs[1], "gate", "up")
	if err != nil {
		return nil, err
	}
	dy, _, err := opFloats(inputs[2], op, "output gradient")
	if err != nil {
		return nil, err
	}
	if len(dy) != len(g) {
		return nil, fmt.Errorf("graph: %v: %d gradient values for %d inputs", op, len(dy), len(g))
	}
	out := op.arena.floats(len(g))
	inChunks(len(g), func(lo, hi int) {
		if op.wrtGate {
			kernels.SwiGLUBackward(out[lo:hi], nil, g[lo:hi], u[lo:hi], dy[lo:hi])
		} else {
			kernels.SwiGLUBackward(nil, out[lo:hi], g[lo:hi], u[lo:hi], dy[lo:hi])
		}
	})
	return tensor.New(tensor.WithShape(s.Clone()...), tensor.WithBacking(out)), nil
}

func (swigluGradOp) ReturnsPtr() bool         { return false }
func (swigluGradOp) CallsExtern() bool        { return false }
func (swigluGradOp) OverwritesInput() int     { return -1 }
func (op swigluGradOp) Hashcode() uint32      { return opHash(op) }
func (op swigluGradOp) String() string        { return fmt.Sprintf("SwiGLUGrad{gate:%v}", op.wrtGate) }
func (op swigluGradOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }

func opTwoSameShape(op fmt.Stringer, a, b gorgonia.Value, an, bn string) ([]float32, []float32, tensor.Shape, error) {
	x, xs, err := opFloats(a, op, an)
	if err != nil {
		return nil, nil, nil, err
	}
	y, ys, err := opFloats(b, op, bn)
	if err != nil {
		return nil, nil, nil, err
	}
	if !xs.Eq(ys) {
		return nil, nil, nil, fmt.Errorf("graph: %v: %s shape %v differs from %s shape %v", op, an, xs, bn, ys)
	}
	return x, y, xs, nil
}

// opColumns copies columns [start, end) of a matrix into a new contiguous
// matrix. It unpacks the single result of operators that compute several
// gradients at once; it is never differentiated itself.
type opColumns struct {
	opUnaryFloat
	width, start, end int
	arena             *graphArena
}

func (op opColumns) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	return opRowsShape(op, inputs, op.width, op.end-op.start)
}

func (op opColumns) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 1); err != nil {
		return nil, err
	}
	x, n, err := opRows(inputs[0], op.width, op, "input")
	if err != nil {
		return nil, err
	}
	w := op.end - op.start
	y := op.arena.floats(n * w)
	for r := range n {
		copy(y[r*w:(r+1)*w], x[r*op.width+op.start:r*op.width+op.end])
	}
	return opMatrix(y, n, w), nil
}

func (op opColumns) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op opColumns) Hashcode() uint32      { return opHash(op) }
func (op opColumns) String() string {
	return fmt.Sprintf("Columns{%d:%d of %d}", op.start, op.end, op.width)
}

var (
	_ gorgonia.SDOp = (*rmsNormOp)(nil)
	_ gorgonia.SDOp = swigluOp{}
	_ gorgonia.Op   = (*rmsNormGradOp)(nil)
	_ gorgonia.Op   = swigluGradOp{}
	_ gorgonia.Op   = opColumns{}
)

// addOp is x + y for two float32 tensors of one shape, written into the
// arena: gorgonia's Add clones its first operand into fresh memory on every
// run (a 512×768 copy and allocation for each of the 42 adapter outputs and
// 12 residuals of a stories15M step). Its gradient passes to both inputs
// unchanged.
type addOp struct{ arena *graphArena }

// applyAdd returns x + y for two nodes of equal shape.
func applyAdd(x, y *gorgonia.Node, arena *graphArena) (*gorgonia.Node, error) {
	if !x.Shape().Eq(y.Shape()) {
		return nil, fmt.Errorf("graph: Add: shapes %v and %v differ", x.Shape(), y.Shape())
	}
	z, err := gorgonia.ApplyOp(addOp{arena: arena}, x, y)
	if err != nil {
		return nil, fmt.Errorf("graph: Add: %w", err)
	}
	return z, nil
}

func (addOp) Arity() int { return 2 }

func (addOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, a)
}

func (op addOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	return opSameShape(op, inputs, 2)
}

func (op addOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 2); err != nil {
		return nil, err
	}
	x, y, s, err := opTwoSameShape(op, inputs[0], inputs[1], "x", "y")
	if err != nil {
		return nil, err
	}
	z := op.arena.floats(len(x))
	inChunks(len(x), func(lo, hi int) {
		for i, v := range x[lo:hi] {
			z[lo+i] = v + y[lo+i]
		}
	})
	return tensor.New(tensor.WithShape(s.Clone()...), tensor.WithBacking(z)), nil
}

// UnsafeDo adds y into x's own buffer and returns x: the graph's machine
// calls it when x is read for the last time, which spares a buffer and the
// writes to fresh memory.
func (op addOp) UnsafeDo(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 2); err != nil {
		return nil, err
	}
	if d, ok := inputs[0].(*tensor.Dense); !ok || d.RequiresIterator() {
		// A view: its elements are not where a slice of them would be.
		return op.Do(inputs...)
	}
	x, y, _, err := opTwoSameShape(op, inputs[0], inputs[1], "x", "y")
	if err != nil {
		return nil, err
	}
	addInPlace(x, y)
	return inputs[0], nil
}

// addInPlace sets x[i] += y[i] over all CPUs.
func addInPlace(x, y []float32) {
	inChunks(len(x), func(lo, hi int) { kernels.Add(x[lo:hi], y[lo:hi]) })
}

func (addOp) ReturnsPtr() bool          { return false }
func (addOp) CallsExtern() bool         { return false }
func (addOp) OverwritesInput() int      { return -1 }
func (addOp) WriteHash(h hash.Hash)     { fmt.Fprint(h, "Add") }
func (op addOp) Hashcode() uint32       { return opHash(op) }
func (addOp) String() string            { return "Add" }
func (addOp) DiffWRT(inputs int) []bool { return []bool{true, true} }

func (addOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	return gorgonia.Nodes{grad, grad}, nil
}

var (
	_ gorgonia.SDOp       = addOp{}
	_ gorgonia.UnsafeDoer = addOp{}
)
