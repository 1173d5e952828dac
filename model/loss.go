package model

import (
	"fmt"
	"github.com/golora/golora/internal/parallel"
	"hash"
	"math"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
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
		return nil, fmt.Errorf("model: cross-entropy: %w", err)
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
		return nil, fmt.Errorf("model: %v: got %d input shapes, want 2", op, len(inputs))
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
	td, ok := targetsV.(*tensor.Dense)
	if !ok || td.Dtype() != tensor.Int {
		return nil, nil, 0, fmt.Errorf("model: %v: targets are a %T, want an Int tensor", what, targetsV)
	}
	if td.RequiresIterator() {
		td = td.Materialize().(*tensor.Dense)
	}
	targets := td.Ints()
	if len(targets) < td.Shape().TotalSize() || td.Shape().TotalSize() != n {
		return nil, nil, 0, fmt.Errorf("model: %v: %d targets for %d rows of logits", what, td.Shape().TotalSize(), n)
	}
	targets = targets[:n]
	for i, t := range targets {
		if t != IgnoreTarget && (t < 0 || t >= op.vocab) {
			return nil, nil, 0, fmt.Errorf("model: %v: target %d at position %d is outside [0, %d) and is not IgnoreTarget (%d)", what, t, i, op.vocab, IgnoreTarget)
		}
	}
	return logits, targets, n, nil
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
				row := logits[r*op.vocab : (r+1)*op.vocab]
				m := rowMax(row)
				terms[r] = float64(m) + math.Log(expShifted(scratch, row, m)) - float64(row[t])
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

// scaleFloats multiplies every element of x by k.
func scaleFloats(x []float32, k float32) {
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		v[0] *= k
		v[1] *= k
		v[2] *= k
		v[3] *= k
	}
	for ; i < len(x); i++ {
		x[i] *= k
	}
}

// rowMax returns the largest element of a non-empty x.
func rowMax(x []float32) float32 {
	m0, m1 := x[0], x[0]
	i := 0
	for ; i+2 <= len(x); i += 2 {
		if x[i] > m0 {
			m0 = x[i]
		}
		if x[i+1] > m1 {
			m1 = x[i+1]
		}
	}
	if i < len(x) && x[i] > m0 {
		m0 = x[i]
	}
	if m1 > m0 {
		return m1
	}
	return m0
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
		return nil, fmt.Errorf("model: gradient of %v: %w", op, err)
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
			row, dst := logits[r*v:(r+1)*v], out[r*v:(r+1)*v]
			// One exponential per logit: store e^(x−max), then scale by
			// dLoss/count / Σ.
			sum := expShifted(dst, row, rowMax(row))
			s := float32(scale)
			scaleFloats(dst, float32(scale/sum))
			dst[t] -= s
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

// expShiftedScalar is expShifted without SIMD. It is several times faster
// than math.Exp element by element (no call, no branch per element), which
// matters because the loss takes two exponentials per logit and there are
// batch·seqLen·vocab logits.
func expShiftedScalar(dst, x []float32, m float32) float64 {
	dst = dst[:len(x)]
	// Two accumulators halve the chain of dependent additions.
	var s0, s1 float64
	i := 0
	for ; i+2 <= len(x); i += 2 {
		e0, e1 := expNear0(max(x[i]-m, -87)), expNear0(max(x[i+1]-m, -87))
		dst[i], dst[i+1] = e0, e1
		s0 += float64(e0)
		s1 += float64(e1)
	}
	if i < len(x) {
		e := expNear0(max(x[i]-m, -87))
		dst[i] = e
		s0 += float64(e)
	}
	return s0 + s1
}

// expNear0 returns e^y for −87 ≤ y ≤ 0 in float32, within about one ulp.
// With k = round(y/ln 2) and r = y − k·ln 2 (|r| ≤ ln 2 / 2), e^y = 2^k · e^r,
// where e^r comes from a degree-6 polynomial interpolating it at Chebyshev
// nodes (relative error below 3e-9 before rounding; the two lowest
// coefficients, within 5e-8 of 1 and 1/2, are rounded to them). It is kept
// small enough for the compiler to inline.
func expNear0(y float32) float32 {
	const (
		log2e = 1.44269504088896341
		// ln 2 split so that k·ln2Hi is exact for |k| < 2^9.
		ln2Hi = 0.693145751953125
		ln2Lo = 1.42860682030941723212e-6
		c3    = 0.16666405302630652
		c4    = 0.041666340142296046
		c5    = 0.00837596822655386
		c6    = 0.0013942159828002571
	)
	k := int32(y*log2e - 0.5) // rounds to nearest for y ≤ 0
	kf := float32(k)
	r := (y - kf*ln2Hi) - kf*ln2Lo
	r2 := r * r
	// Estrin's scheme: shorter dependency chains than Horner's.
	p := (1 + r) + r2*((0.5+c3*r)+r2*((c4+c5*r)+r2*c6))
	return p * math.Float32frombits(uint32(127+k)<<23)
}

var (
	_ gorgonia.SDOp = crossEntropyOp{}
	_ gorgonia.Op   = crossEntropyGradOp{}
)
