package graph

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/internal/parallel"
)

// IgnoreTarget is the target id of positions that do not count in the loss
// (padding, or prompt tokens when only the answer is trained).
const IgnoreTarget = -1

// crossEntropyOp is the mean next-token cross-entropy of logits [n, vocab]
// against integer targets (n of them, any shape), skipping IgnoreTarget. Each
// row's term is logsumexp(row) − row[target], computed from the row's maximum
// so no exponential overflows. When every target is ignored the loss is 0 and
// so is its gradient.
//
// One fused operator replaces LogSoftMax, a one-hot mask and a mean: those
// write three [n, vocab] tensors, and with a 32,000-token vocabulary the
// softmax pass is a large part of a step.
type crossEntropyOp struct {
	vocab int
	arena *graphArena
}

// crossEntropy builds the loss node for logits [n, vocab] and an Int targets
// node with n elements.
func crossEntropy(logits, targets *gorgonia.Node, vocab int, arena *graphArena) (*gorgonia.Node, error) {
	loss, err := gorgonia.ApplyOp(crossEntropyOp{vocab: vocab, arena: arena}, logits, targets)
	if err != nil {
		return nil, fmt.Errorf("graph: cross-entropy: %w", err)
	}
	return loss, nil
}

func (crossEntropyOp) Arity() int { return 2 }

func (crossEntropyOp) Type() hm.Type {
	return hm.NewFnType(
		gorgonia.TensorType{Dims: 2, Of: tensor.Float32},
		gorgonia.TensorType{Dims: 2, Of: tensor.Int},
		tensor.Float32)
}

func (op crossEntropyOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	if len(inputs) != 2 {
		return nil, fmt.Errorf("graph: %v: got %d input shapes, want 2", op, len(inputs))
	}
	return tensor.ScalarShape(), nil
}

// lossInputs checks and returns the logits, the targets and the number of
// rows.
func (op crossEntropyOp) lossInputs(logitsV, targetsV gorgonia.Value, what fmt.Stringer) ([]float32, []int, int, error) {
	logits, n, err := opRows(logitsV, op.vocab, what, "logits")
	if err != nil {
		return nil, nil, 0, err
	}
	targets, err := lossTargets(targetsV, n, op.vocab, what)
	if err != nil {
		return nil, nil, 0, err
	}
	return logits, targets, n, nil
}

// lossTargets checks and returns the n targets of a loss over a vocabulary
// of vocab tokens.
func lossTargets(targetsV gorgonia.Value, n, vocab int, what fmt.Stringer) ([]int, error) {
	td, ok := targetsV.(*tensor.Dense)
	if !ok || td.Dtype() != tensor.Int {
		return nil, fmt.Errorf("graph: %v: targets are a %T, want an Int tensor", what, targetsV)
	}
	if td.RequiresIterator() {
		td = td.Materialize().(*tensor.Dense)
	}
	targets := td.Ints()
	if len(targets) < td.Shape().TotalSize() || td.Shape().TotalSize() != n {
		return nil, fmt.Errorf("graph: %v: %d targets for %d rows", what, td.Shape().TotalSize(), n)
	}
	targets = targets[:n]
	for i, t := range targets {
		if t != IgnoreTarget && (t < 0 || t >= vocab) {
			return nil, fmt.Errorf("graph: %v: target %d at position %d is outside [0, %d) and is not IgnoreTarget (%d)", what, t, i, vocab, IgnoreTarget)
		}
	}
	return targets, nil
}

func (op crossEntropyOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 2); err != nil {
		return nil, err
	}
	logits, targets, n, err := op.lossInputs(inputs[0], inputs[1], op)
	if err != nil {
		return nil, err
	}
	terms := make([]float64, n)
	parallel.For(n, 16, 1, func(lo, hi int) {
		scratch := make([]float32, op.vocab)
		for r := lo; r < hi; r++ {
			if t := targets[r]; t != IgnoreTarget {
				terms[r] = kernels.CrossEntropy(scratch, logits[r*op.vocab:(r+1)*op.vocab], t)
			}
		}
	})
	var sum float64
	count := 0
	for r, t := range targets {
		if t != IgnoreTarget {
			sum += terms[r]
			count++
		}
	}
	if count == 0 {
		return gorgonia.NewF32(0), nil
	}
	return gorgonia.NewF32(float32(sum / float64(count))), nil
}

func (crossEntropyOp) ReturnsPtr() bool         { return false }
func (crossEntropyOp) CallsExtern() bool        { return false }
func (crossEntropyOp) OverwritesInput() int     { return -1 }
func (op crossEntropyOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op crossEntropyOp) Hashcode() uint32      { return opHash(op) }
func (op crossEntropyOp) String() string        { return fmt.Sprintf("CrossEntropy{vocab %d}", op.vocab) }

func (crossEntropyOp) DiffWRT(inputs int) []bool { return []bool{true, false} }

func (op crossEntropyOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	dl, err := gorgonia.ApplyOp(crossEntropyGradOp{op}, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, fmt.Errorf("graph: gradient of %v: %w", op, err)
	}
	return gorgonia.Nodes{dl, nil}, nil
}

// crossEntropyGradOp maps (logits, targets, dLoss) to dLogits: for a counted
// row, dLoss/count · (softmax(row) − onehot(target)); zero for ignored rows.
type crossEntropyGradOp struct{ fwd crossEntropyOp }

func (crossEntropyGradOp) Arity() int { return 3 }

func (crossEntropyGradOp) Type() hm.Type {
	m := gorgonia.TensorType{Dims: 2, Of: tensor.Float32}
	return hm.NewFnType(m, gorgonia.TensorType{Dims: 2, Of: tensor.Int}, tensor.Float32, m)
}

func (op crossEntropyGradOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	return opSameShape(op, inputs, 3)
}

func (op crossEntropyGradOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 3); err != nil {
		return nil, err
	}
	logits, targets, n, err := op.fwd.lossInputs(inputs[0], inputs[1], op)
	if err != nil {
		return nil, err
	}
	g, err := opScalar(inputs[2], op, "loss gradient")
	if err != nil {
		return nil, err
	}
	count := 0
	for _, t := range targets {
		if t != IgnoreTarget {
			count++
		}
	}
	v := op.fwd.vocab
	out := op.fwd.arena.floats(n * v)
	if count == 0 {
		clear(out)
		return opMatrix(out, n, v), nil
	}
	scale := float64(g) / float64(count)
	parallel.For(n, 16, 1, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			t := targets[r]
			if t == IgnoreTarget {
				clear(out[r*v : (r+1)*v])
				continue
			}
			kernels.CrossEntropyBackward(out[r*v:(r+1)*v], logits[r*v:(r+1)*v], t, scale)
		}
	})
	return opMatrix(out, n, v), nil
}

func (crossEntropyGradOp) ReturnsPtr() bool         { return false }
func (crossEntropyGradOp) CallsExtern() bool        { return false }
func (crossEntropyGradOp) OverwritesInput() int     { return -1 }
func (op crossEntropyGradOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op crossEntropyGradOp) Hashcode() uint32      { return opHash(op) }
func (op crossEntropyGradOp) String() string        { return "Grad" + op.fwd.String() }

var (
	_ gorgonia.SDOp = crossEntropyOp{}
	_ gorgonia.Op   = crossEntropyGradOp{}
)
