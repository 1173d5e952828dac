package graph

import (
	"fmt"
	"hash"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/internal/parallel"
)

// ropeTable holds cos and sin of the rotary position angles in Hugging Face's
// rotate_half layout: for a head whose first r values rotate (r = the rotary
// dimension, usually the head dimension), element i < r/2 of the head is
// paired with element i + r/2 and the pair is rotated by pos·invFreq[i].
type ropeTable struct {
	seqLen, headDim, rotary int
	theta                   float64
	cos, sin                []float32 // [seqLen, rotary/2]
}

// newRopeTable tabulates the angles of seqLen positions for heads of
// headDim values of which the first rotary/2 pairs turn by invFreq
// (len(invFreq) = rotary/2), with cosines and sines multiplied by scale
// (longrope's attention factor; 1 otherwise). The rotation is then scale
// times an orthogonal one, so its transpose (inverse) is still its gradient.
func newRopeTable(seqLen, headDim int, theta float64, invFreq []float64, scale float32) (*ropeTable, error) {
	if headDim <= 0 || headDim%2 != 0 {
		return nil, fmt.Errorf("graph: RoPE needs an even, positive head dimension, got %d", headDim)
	}
	if theta <= 0 {
		return nil, fmt.Errorf("graph: RoPE theta %g is not positive", theta)
	}
	half := len(invFreq)
	if half == 0 || half > headDim/2 {
		return nil, fmt.Errorf("graph: RoPE rotates %d pairs of a head of %d values", half, headDim)
	}
	t := &ropeTable{
		seqLen: seqLen, headDim: headDim, rotary: 2 * half, theta: theta,
		cos: make([]float32, seqLen*half),
		sin: make([]float32, seqLen*half),
	}
	for pos := range seqLen {
		kernels.RopeAnglesScaled(t.cos[pos*half:(pos+1)*half], t.sin[pos*half:(pos+1)*half], pos, invFreq, scale)
	}
	return t, nil
}

// rotate applies the rotation (or, with inverse, its transpose: the gradient)
// to x, [n, heads·headDim] where row r sits at position r mod seqLen, writing
// into y, which may be x.
func (t *ropeTable) rotate(y, x []float32, heads int, inverse bool) {
	width := heads * t.headDim
	half := t.rotary / 2
	n := len(x) / width
	parallel.For(n, 64, 1, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			pos := r % t.seqLen
			kernels.Rope(y[r*width:(r+1)*width], x[r*width:(r+1)*width],
				t.cos[pos*half:(pos+1)*half], t.sin[pos*half:(pos+1)*half], t.headDim, inverse)
		}
	})
}

// ropeOp applies rotary position embeddings to queries or keys laid out as
// [batch·seqLen, heads·headDim].
type ropeOp struct {
	opUnaryFloat
	table   *ropeTable
	heads   int
	inverse bool // the gradient: rotation by the opposite angle
	arena   *graphArena
}

// applyRoPE rotates the heads of x, [batch·seqLen, heads·headDim].
func applyRoPE(x *gorgonia.Node, table *ropeTable, heads int, arena *graphArena) (*gorgonia.Node, error) {
	y, err := gorgonia.ApplyOp(&ropeOp{table: table, heads: heads, arena: arena}, x)
	if err != nil {
		return nil, fmt.Errorf("model: RoPE: %w", err)
	}
	return y, nil
}

func (op *ropeOp) width() int { return op.heads * op.table.headDim }

func (op *ropeOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	return opRowsShape(op, inputs, op.width(), op.width())
}

func (op *ropeOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 1); err != nil {
		return nil, err
	}
	x, n, err := opRows(inputs[0], op.width(), op, "input")
	if err != nil {
		return nil, err
	}
	if n%op.table.seqLen != 0 {
		return nil, fmt.Errorf("model: %v: %d rows is not a whole number of sequences of %d", op, n, op.table.seqLen)
	}
	y := op.arena.floats(len(x))
	op.table.rotate(y, x, op.heads, op.inverse)
	return opMatrix(y, n, op.width()), nil
}

func (op *ropeOp) WriteHash(h hash.Hash) { fmt.Fprint(h, op.String()) }
func (op *ropeOp) Hashcode() uint32      { return opHash(op) }

func (op *ropeOp) String() string {
	return fmt.Sprintf("RoPE{seq %d, heads %d×%d, theta %g, inverse %v}",
		op.table.seqLen, op.heads, op.table.headDim, op.table.theta, op.inverse)
}

func (op *ropeOp) DiffWRT(inputs int) []bool { return []bool{true} }

// SymDiff: the rotation is orthogonal, so its gradient is the rotation by the
// opposite angle applied to the output gradient.
func (op *ropeOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	inv := &ropeOp{table: op.table, heads: op.heads, inverse: !op.inverse, arena: op.arena}
	dx, err := gorgonia.ApplyOp(inv, grad)
	if err != nil {
		return nil, fmt.Errorf("model: gradient of %v: %w", op, err)
	}
	return gorgonia.Nodes{dx}, nil
}

var _ gorgonia.SDOp = (*ropeOp)(nil)
