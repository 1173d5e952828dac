package graph

import (
	"fmt"
	"hash"
	"runtime"
	"sync"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/internal/kernels"
)

// attentionShape describes causal grouped-query attention over a batch of
// sequences: q is [batch·seqLen, heads·headDim], k and v are
// [batch·seqLen, kvHeads·headDim], and query head h reads key/value head
// h / (heads/kvHeads).
type attentionShape struct {
	batch, seqLen, heads, kvHeads, headDim int
	window                                 int // sliding window; 0 for none
}

func (s attentionShape) rows() int    { return s.batch * s.seqLen }
func (s attentionShape) qWidth() int  { return s.heads * s.headDim }
func (s attentionShape) kvWidth() int { return s.kvHeads * s.headDim }
func (s attentionShape) group() int   { return s.heads / s.kvHeads }

// kernel returns the attention kernel of one head of one sequence.
func (s attentionShape) kernel() kernels.Attention {
	return kernels.Attention{SeqLen: s.seqLen, HeadDim: s.headDim, QStride: s.qWidth(), KVStride: s.kvWidth(), Window: s.window}
}

// attentionOp computes softmax(q·kᵀ/sqrt(d) + causal mask)·v for every
// sequence and head with a few matrix products per (sequence, head): building
// the same from gorgonia's primitives takes 4-D transposes, a broadcast mask
// and batched products, and was the slowest part of the graph.
type attentionOp struct {
	shape attentionShape
	arena *graphArena
	// scores pools the [seqLen, seqLen] work matrices of concurrent workers.
	scores sync.Pool
}

func newAttentionOp(s attentionShape, arena *graphArena) *attentionOp {
	op := &attentionOp{shape: s, arena: arena}
	op.scores.New = func() any {
		buf := make([]float32, 2*s.seqLen*s.seqLen)
		return &buf
	}
	return op
}

// applyAttention builds the attention node for q, k and v (after RoPE).
func applyAttention(op *attentionOp, q, k, v *gorgonia.Node) (*gorgonia.Node, error) {
	out, err := gorgonia.ApplyOp(op, q, k, v)
	if err != nil {
		return nil, fmt.Errorf("graph: attention: %w", err)
	}
	return out, nil
}

func (op *attentionOp) Arity() int { return 3 }

func (op *attentionOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, a, a)
}

func (op *attentionOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	if len(inputs) != 3 {
		return nil, fmt.Errorf("graph: %v: got %d input shapes, want 3", op, len(inputs))
	}
	return tensor.Shape{op.shape.rows(), op.shape.qWidth()}, nil
}

// inputs checks and returns q, k and v.
func (op *attentionOp) inputs(vals []gorgonia.Value) (q, k, v []float32, err error) {
	s := op.shape
	widths := []int{s.qWidth(), s.kvWidth(), s.kvWidth()}
	names := []string{"q", "k", "v"}
	out := make([][]float32, 3)
	for i := range 3 {
		var n int
		out[i], n, err = opRows(vals[i], widths[i], op, names[i])
		if err != nil {
			return nil, nil, nil, err
		}
		if n != s.rows() {
			return nil, nil, nil, fmt.Errorf("graph: %v: %s has %d rows, want %d", op, names[i], n, s.rows())
		}
	}
	return out[0], out[1], out[2], nil
}

func (op *attentionOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 3); err != nil {
		return nil, err
	}
	q, k, v, err := op.inputs(inputs)
	if err != nil {
		return nil, err
	}
	s := op.shape
	out := op.arena.floats(s.rows() * s.qWidth())
	a := s.kernel()
	op.forEachKV(func(b, kvh int, work []float32) {
		T, qw, kw := s.seqLen, s.qWidth(), s.kvWidth()
		kb := k[b*T*kw+kvh*s.headDim:]
		vb := v[b*T*kw+kvh*s.headDim:]
		for h := kvh * s.group(); h < (kvh+1)*s.group(); h++ {
			at := b*T*qw + h*s.headDim
			a.Forward(out[at:], work[:T*T], q[at:], kb, vb)
		}
	})
	return opMatrix(out, s.rows(), s.qWidth()), nil
}

// forEachKV runs fn for every (sequence, key/value head) pair, spread over the
// available CPUs. Each pair owns its rows of the output and, in the gradient,
// the key and value gradients of its head, so workers never write the same
// memory. work is a private buffer of 2·seqLen² values.
func (op *attentionOp) forEachKV(fn func(b, kvh int, work []float32)) {
	s := op.shape
	tasks := s.batch * s.kvHeads
	workers := min(runtime.GOMAXPROCS(0), tasks)
	var wg sync.WaitGroup
	next := make(chan int, tasks)
	for t := range tasks {
		next <- t
	}
	close(next)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bufp := op.scores.Get().(*[]float32)
			defer op.scores.Put(bufp)
			for t := range next {
				fn(t/s.kvHeads, t%s.kvHeads, *bufp)
			}
		}()
	}
	wg.Wait()
}

func (op *attentionOp) ReturnsPtr() bool      { return false }
func (op *attentionOp) CallsExtern() bool     { return false }
func (op *attentionOp) OverwritesInput() int  { return -1 }
func (op *attentionOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *attentionOp) Hashcode() uint32      { return opHash(op) }

func (op *attentionOp) String() string {
	s := op.shape
	return fmt.Sprintf("CausalAttention{batch %d, seq %d, heads %d/%d×%d, window %d}", s.batch, s.seqLen, s.heads, s.kvHeads, s.headDim, s.window)
}

func (op *attentionOp) DiffWRT(inputs int) []bool { return []bool{true, true, true} }

// SymDiff computes the three gradients in one operator, which returns them
// side by side as [rows, qWidth + 2·kvWidth]; column extractions hand each
// input its part.
func (op *attentionOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	packed, err := gorgonia.ApplyOp(&attentionGradOp{fwd: op}, inputs[0], inputs[1], inputs[2], grad)
	if err != nil {
		return nil, fmt.Errorf("graph: gradient of %v: %w", op, err)
	}
	s := op.shape
	width := s.qWidth() + 2*s.kvWidth()
	bounds := []int{0, s.qWidth(), s.qWidth() + s.kvWidth(), width}
	grads := make(gorgonia.Nodes, 3)
	for i := range grads {
		grads[i], err = gorgonia.ApplyOp(opColumns{width: width, start: bounds[i], end: bounds[i+1], arena: op.arena}, packed)
		if err != nil {
			return nil, fmt.Errorf("graph: gradient of %v: %w", op, err)
		}
	}
	return grads, nil
}

// attentionGradOp maps (q, k, v, dOut) to [dq | dk | dv] (see
// kernels.Attention.Backward). The attention weights are recomputed rather
// than kept from the forward pass, which keeps the operators free of state
// shared between runs.
type attentionGradOp struct{ fwd *attentionOp }

func (op *attentionGradOp) Arity() int { return 4 }

func (op *attentionGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, a, a, a)
}

func (op *attentionGradOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	if len(inputs) != 4 {
		return nil, fmt.Errorf("graph: %v: got %d input shapes, want 4", op, len(inputs))
	}
	s := op.fwd.shape
	return tensor.Shape{s.rows(), s.qWidth() + 2*s.kvWidth()}, nil
}

func (op *attentionGradOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 4); err != nil {
		return nil, err
	}
	q, k, v, err := op.fwd.inputs(inputs[:3])
	if err != nil {
		return nil, err
	}
	s := op.fwd.shape
	dOut, n, err := opRows(inputs[3], s.qWidth(), op, "output gradient")
	if err != nil {
		return nil, err
	}
	if n != s.rows() {
		return nil, fmt.Errorf("graph: %v: output gradient has %d rows, want %d", op, n, s.rows())
	}
	T, qw, kw, hd := s.seqLen, s.qWidth(), s.kvWidth(), s.headDim
	width := qw + 2*kw
	packed := op.fwd.arena.floats(s.rows() * width)
	a := s.kernel()
	op.fwd.forEachKV(func(b, kvh int, work []float32) {
		p, dp := work[:T*T], work[T*T:2*T*T]
		kb := k[b*T*kw+kvh*hd:]
		vb := v[b*T*kw+kvh*hd:]
		dk := packed[b*T*width+qw+kvh*hd:]
		dv := packed[b*T*width+qw+kw+kvh*hd:]
		for h := kvh * s.group(); h < (kvh+1)*s.group(); h++ {
			at := b*T*qw + h*hd
			a.Backward(packed[b*T*width+h*hd:], dk, dv, width, h > kvh*s.group(), p, dp, q[at:], kb, vb, dOut[at:])
		}
	})
	return opMatrix(packed, s.rows(), width), nil
}

func (op *attentionGradOp) ReturnsPtr() bool      { return false }
func (op *attentionGradOp) CallsExtern() bool     { return false }
func (op *attentionGradOp) OverwritesInput() int  { return -1 }
func (op *attentionGradOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *attentionGradOp) Hashcode() uint32      { return opHash(op) }
func (op *attentionGradOp) String() string        { return "Grad" + op.fwd.String() }

var (
	_ gorgonia.SDOp = (*attentionOp)(nil)
	_ gorgonia.Op   = (*attentionGradOp)(nil)
)
