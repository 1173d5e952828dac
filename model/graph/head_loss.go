package graph

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/internal/parallel"
	"github.com/golora/golora/model"
)

// headLossChunk is the most logits (rows × vocabulary) the fused head loss
// holds at a time: 256 MiB, 523 rows of a 128,256-token vocabulary, so that
// a training batch of 512 tokens is one chunk. Each of a chunk's two
// products packs the whole head (0.5 G elements a step at Llama 3's shape),
// so the rows of a chunk are what that cost is spread over: at the 1B shape,
// 128-row chunks spent about a quarter of the head's time packing it four
// times over, and left the 14-row tiles 9% empty.
const headLossChunk = 64 << 20

// headLossOp is the frozen output head and the mean next-token
// cross-entropy in one operator: it maps the final hidden states [n, dim]
// and the targets to the loss, a chunk of rows at a time, so that the
// [n, vocab] logits and their gradient never exist whole (with Llama 3's
// 128,256-token vocabulary and 512 rows each would take 263 MB).
//
// The head gets no gradient, so the gradient with respect to the hidden
// states, (softmax − onehot)·W / count per counted row, is worked out while
// each chunk's logits are at hand, and kept until the gradient operator
// scales it by the incoming dLoss. This saves the backward pass a second
// head product; a forward-only run pays for the gradient's product, which
// is why Graph evaluates from its Logits node instead.
type headLossOp struct {
	head  *model.Linear
	arena *graphArena
	// chunk is the number of logits held at a time (headLossChunk outside
	// tests); a chunk has at least one row.
	chunk int
	// grad is shared with the gradient operator: d(mean loss)/d(hidden)
	// of the last Do, in an arena buffer valid until the next run.
	grad *[]float32
}

// headLoss builds the fused head and loss node for the hidden states
// [n, head.In] and an Int targets node with n elements. The head may be
// dense or quantized (a 16-bit head is decoded into each product's panels).
func headLoss(head *model.Linear, hidden, targets *gorgonia.Node, arena *graphArena) (*gorgonia.Node, error) {
	if err := head.Check(); err != nil {
		return nil, fmt.Errorf("graph: head loss: %w", err)
	}
	loss, err := gorgonia.ApplyOp(&headLossOp{head: head, arena: arena, chunk: headLossChunk, grad: new([]float32)}, hidden, targets)
	if err != nil {
		return nil, fmt.Errorf("graph: head loss: %w", err)
	}
	return loss, nil
}

func (op *headLossOp) Arity() int { return 2 }

func (op *headLossOp) Type() hm.Type {
	return hm.NewFnType(
		gorgonia.TensorType{Dims: 2, Of: tensor.Float32},
		gorgonia.TensorType{Dims: 2, Of: tensor.Int},
		tensor.Float32)
}

func (op *headLossOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	if len(inputs) != 2 {
		return nil, fmt.Errorf("graph: %v: got %d input shapes, want 2", op, len(inputs))
	}
	return tensor.ScalarShape(), nil
}

func (op *headLossOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 2); err != nil {
		return nil, err
	}
	dim, vocab := op.head.In, op.head.Out
	hidden, n, err := opRows(inputs[0], dim, op, "hidden states")
	if err != nil {
		return nil, err
	}
	targets, err := lossTargets(inputs[1], n, vocab, op)
	if err != nil {
		return nil, err
	}
	grad := op.arena.floats(n * dim)
	clear(grad)
	*op.grad = grad
	// Only the counted rows go through the head: prompt and padding
	// positions cost nothing.
	var rows []int
	for r, t := range targets {
		if t != IgnoreTarget {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return gorgonia.NewF32(0), nil
	}
	scale := 1 / float64(len(rows))
	// Chunks of equal size rather than full ones and a remainder.
	chunks := (len(rows) + max(1, op.chunk/vocab) - 1) / max(1, op.chunk/vocab)
	chunk := (len(rows) + chunks - 1) / chunks
	x := op.arena.floats(chunk * dim)
	dx := op.arena.floats(chunk * dim)
	logits := op.arena.floats(chunk * vocab)
	defer func() {
		for _, buf := range [][]float32{x, dx, logits} {
			op.arena.release(&buf[0])
		}
	}()
	terms := make([]float64, len(rows))
	for lo := 0; lo < len(rows); lo += chunk {
		m := min(chunk, len(rows)-lo)
		for i, r := range rows[lo : lo+m] {
			copy(x[i*dim:(i+1)*dim], hidden[r*dim:(r+1)*dim])
		}
		if err := weightProduct(op.head, true, m, x[:m*dim], logits); err != nil {
			return nil, err
		}
		if b := op.head.Bias; b != nil {
			kernels.AddBias(logits[:m*vocab], b)
		}
		parallel.For(m, 1, 1, func(i0, i1 int) {
			for i := i0; i < i1; i++ {
				row := logits[i*vocab : (i+1)*vocab]
				terms[lo+i] = kernels.CrossEntropyWithGrad(row, targets[rows[lo+i]], scale)
			}
		})
		// The chunk's gradient rows: dLogits · W.
		if err := weightProduct(op.head, false, m, logits, dx); err != nil {
			return nil, err
		}
		for i, r := range rows[lo : lo+m] {
			copy(grad[r*dim:(r+1)*dim], dx[i*dim:(i+1)*dim])
		}
	}
	var sum float64
	for _, v := range terms {
		sum += v
	}
	return gorgonia.NewF32(float32(sum * scale)), nil
}

func (op *headLossOp) ReturnsPtr() bool     { return false }
func (op *headLossOp) CallsExtern() bool    { return false }
func (op *headLossOp) OverwritesInput() int { return -1 }

// WriteHash includes the head's address, as frozenLinearOp does.
func (op *headLossOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "HeadLoss{%s,%p}", op.head.Name, op.head)
}
func (op *headLossOp) Hashcode() uint32 { return opHash(op) }
func (op *headLossOp) String() string {
	return fmt.Sprintf("HeadLoss{%s [%d,%d]}", op.head.Name, op.head.Out, op.head.In)
}

func (op *headLossOp) DiffWRT(inputs int) []bool { return []bool{true, false} }

func (op *headLossOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	// The loss node is an input of the gradient so that the machine runs
	// the forward operator, which computes the gradient, first.
	dx, err := gorgonia.ApplyOp(headLossGradOp{op}, inputs[0], output, grad)
	if err != nil {
		return nil, fmt.Errorf("graph: gradient of %v: %w", op, err)
	}
	return gorgonia.Nodes{dx, nil}, nil
}

// headLossGradOp maps (hidden, loss, dLoss) to dHidden: the gradient the
// forward operator kept, times dLoss.
type headLossGradOp struct{ fwd *headLossOp }

func (headLossGradOp) Arity() int { return 3 }

func (headLossGradOp) Type() hm.Type {
	m := gorgonia.TensorType{Dims: 2, Of: tensor.Float32}
	return hm.NewFnType(m, tensor.Float32, tensor.Float32, m)
}

func (op headLossGradOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	return opSameShape(op, inputs, 3)
}

func (op headLossGradOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 3); err != nil {
		return nil, err
	}
	dim := op.fwd.head.In
	_, n, err := opRows(inputs[0], dim, op, "hidden states")
	if err != nil {
		return nil, err
	}
	g, err := opScalar(inputs[2], op, "loss gradient")
	if err != nil {
		return nil, err
	}
	kept := *op.fwd.grad
	if len(kept) != n*dim {
		return nil, fmt.Errorf("graph: %v: the forward operator kept %d gradient values for %d rows of %d", op, len(kept), n, dim)
	}
	out := op.fwd.arena.floats(n * dim)
	for i, v := range kept {
		out[i] = v * g
	}
	return opMatrix(out, n, dim), nil
}

func (headLossGradOp) ReturnsPtr() bool         { return false }
func (headLossGradOp) CallsExtern() bool        { return false }
func (headLossGradOp) OverwritesInput() int     { return -1 }
func (op headLossGradOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "Grad%s,%p", op.fwd, op.fwd.head) }
func (op headLossGradOp) Hashcode() uint32      { return opHash(op) }
func (op headLossGradOp) String() string        { return "Grad" + op.fwd.String() }

var (
	_ gorgonia.SDOp = (*headLossOp)(nil)
	_ gorgonia.Op   = headLossGradOp{}
)
