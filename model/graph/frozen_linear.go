package graph

import (
	"errors"
	"fmt"
	"hash"
	"runtime"
	"sync"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/internal/blas"
	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/internal/parallel"
	"github.com/golora/golora/model"
)

// frozenLinear applies the frozen weight lin to x in x's graph: it returns
// the node x·Wᵀ of shape [n, lin.Out] for x of shape [n, lin.In]. The weight
// stays on the Go side, dense or quantized; it receives no gradient and is never
// modified, while the gradient with respect to x (dY·W) flows back through it.
// Operators built with a nil arena allocate their outputs.
func frozenLinear(lin *model.Linear, x *gorgonia.Node, arena *graphArena) (*gorgonia.Node, error) {
	if err := lin.Check(); err != nil {
		return nil, fmt.Errorf("graph: frozen linear: %w", err)
	}
	y, err := gorgonia.ApplyOp(newFrozenLinearOp(lin, arena), x)
	if err != nil {
		return nil, fmt.Errorf("graph: frozen linear %s: %w", lin.Name, err)
	}
	return y, nil
}

// Quantized weights are expanded to float32 a few rows at a time into scratch
// whose size depends on the number of CPUs, not on the matrix, and multiplied
// from there. The rows are cut into tiles of equal size holding about
// tileTarget values (256 KiB, a typical L2 cache), within
// tileMinRows..tileMaxRows rows. A pass over the weight goes in rounds of one
// tile per CPU (a matrix with no more rows than that takes a single round):
// the round's tiles are expanded in parallel into one scratch buffer, whose
// product is then one parallel matrix product, large enough to run at full
// BLAS speed.
const (
	tileTarget  = 64 << 10
	tileMinRows = 64
	tileMaxRows = 256
)

// mulTSmallRows is the largest number of input rows for which a quantized
// forward pass uses the format's own fused product (Matrix.MulT) instead of
// expanding tiles: expanding costs one pass over the weight whatever the
// batch, which pays off once a few rows share it. On a 768×288 NF4 weight the
// tiles were faster from 2 rows with OpenBLAS and from about 4 with gonum.
const mulTSmallRows = 2

// frozenKernel runs products with one frozen weight. Each product takes its
// own buffer from the scratch pool for its whole run, so concurrent calls
// (two machines on one graph, or the forward and gradient operators) never
// share memory.
type frozenKernel struct {
	lin *model.Linear
	// scratch holds the buffers that rounds are expanded into (*[]float32).
	// A Graph gives all its layers one pool: a product holds one buffer from
	// its start to its end, so the pool holds about as many buffers as
	// products run at the same time, each one tile per CPU, however many
	// layers the model has. (With one pool per layer, stories15M's 42 block
	// linears kept about 17 MB of scratch on two CPUs, most of what NF4 saves
	// over float32 weights.)
	scratch *sync.Pool
	// tileRows is the number of weight rows per tile; the last tile may
	// hold fewer.
	tileRows int
}

// newFrozenKernel returns the kernel of lin, expanding quantized rows into
// buffers from scratch, or from a pool of its own when scratch is nil.
func newFrozenKernel(lin *model.Linear, scratch *sync.Pool) *frozenKernel {
	if scratch == nil {
		scratch = new(sync.Pool)
	}
	rows := max(tileMinRows, min(tileMaxRows, tileTarget/lin.In))
	// Equal tiles rather than full ones and a remainder, so that the tiles
	// of a round take their workers the same time.
	tiles := (lin.Out + rows - 1) / rows
	return &frozenKernel{lin: lin, scratch: scratch, tileRows: (lin.Out + tiles - 1) / tiles}
}

// roundRows returns the rows expanded per round: one tile per CPU.
func (k *frozenKernel) roundRows() int {
	return min(k.lin.Out, k.tileRows*runtime.GOMAXPROCS(0))
}

// buffer returns a buffer of at least n values from the kernel's scratch
// pool; callers put it back. A buffer too small for n is dropped, so the
// pool settles on the size of the largest round.
func (k *frozenKernel) buffer(n int) *[]float32 {
	if p, ok := k.scratch.Get().(*[]float32); ok && len(*p) >= n {
		return p
	}
	buf := make([]float32, n)
	return &buf
}

// expand dequantizes weight rows [start, end) into dst, one tile per
// goroutine; start is a multiple of tileRows.
func (k *frozenKernel) expand(dst []float32, start, end int) error {
	in := k.lin.In
	errs := make([]error, (end-start+k.tileRows-1)/k.tileRows)
	parallel.For(len(errs), 1, 1, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			s, e := start+t*k.tileRows, min(start+(t+1)*k.tileRows, end)
			if err := k.lin.Quantized.DequantizeRows(dst[(s-start)*in:(e-start)*in], s, e); err != nil {
				errs[t] = fmt.Errorf("graph: %s rows [%d, %d): %w", k.lin.Name, s, e, err)
			}
		}
	})
	return errors.Join(errs...)
}

// mulT computes y = x·Wᵀ for n rows: x is [n, In], y is [n, Out]; y is
// overwritten.
func (k *frozenKernel) mulT(y, x []float32, n int) error {
	lin := k.lin
	if lin.Dense != nil {
		blas.ParallelSgemm(false, true, n, lin.Out, lin.In, 1, x, lin.In, lin.Dense, lin.In, 0, y, lin.Out)
		return nil
	}
	if n <= mulTSmallRows {
		if err := lin.Quantized.MulT(y, x, n); err != nil {
			return fmt.Errorf("graph: %s: %w", lin.Name, err)
		}
		return nil
	}
	rows := k.roundRows()
	bufp := k.buffer(rows * lin.In)
	defer k.scratch.Put(bufp)
	w := *bufp
	for start := 0; start < lin.Out; start += rows {
		end := min(start+rows, lin.Out)
		if err := k.expand(w, start, end); err != nil {
			return err
		}
		// The round's product fills columns [start, end) of y, addressed
		// through y's full row stride.
		blas.ParallelSgemm(false, true, n, end-start, lin.In, 1, x, lin.In, w, lin.In, 0, y[start:], lin.Out)
	}
	return nil
}

// mul computes dx = dy·W for n rows: dy is [n, Out], dx is [n, In]; dx is
// overwritten.
func (k *frozenKernel) mul(dx, dy []float32, n int) error {
	lin := k.lin
	if lin.Dense != nil {
		blas.ParallelSgemm(false, false, n, lin.In, lin.Out, 1, dy, lin.Out, lin.Dense, lin.In, 0, dx, lin.In)
		return nil
	}
	rows := k.roundRows()
	bufp := k.buffer(rows * lin.In)
	defer k.scratch.Put(bufp)
	w := *bufp
	for start := 0; start < lin.Out; start += rows {
		end := min(start+rows, lin.Out)
		if err := k.expand(w, start, end); err != nil {
			return err
		}
		var beta float32
		if start > 0 {
			beta = 1
		}
		// dx += dy[:, start:end] · W[start:end, :]
		blas.ParallelSgemm(false, false, n, lin.In, end-start, 1, dy[start:], lin.Out, w, lin.In, beta, dx, lin.In)
	}
	return nil
}

// frozenLinearOp is the gorgonia operator Y = X·Wᵀ with W held by the
// kernel or, with grad set, its input gradient dX = dY·W. Only the forward
// operator is differentiable: training never needs second derivatives.
type frozenLinearOp struct {
	k     *frozenKernel
	arena *graphArena
	grad  bool
}

func newFrozenLinearOp(lin *model.Linear, arena *graphArena) *frozenLinearOp {
	var scratch *sync.Pool
	if arena != nil {
		scratch = &arena.scratch
	}
	return &frozenLinearOp{k: newFrozenKernel(lin, scratch), arena: arena}
}

// widths returns the row widths of the operator's input and output.
func (op *frozenLinearOp) widths() (in, out int) {
	if op.grad {
		return op.k.lin.Out, op.k.lin.In
	}
	return op.k.lin.In, op.k.lin.Out
}

func (op *frozenLinearOp) Arity() int { return 1 }

func (op *frozenLinearOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a)
}

func (op *frozenLinearOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	in, out := op.widths()
	return opRowsShape(op, inputs, in, out)
}

func (op *frozenLinearOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if err := opCheckInputs(op, inputs, 1); err != nil {
		return nil, err
	}
	in, out := op.widths()
	what, product := "input", op.k.mulT
	if op.grad {
		what, product = "output gradient", op.k.mul
	}
	x, n, err := opRows(inputs[0], in, op, what)
	if err != nil {
		return nil, err
	}
	y := op.arena.floats(n * out)
	if err := product(y, x, n); err != nil {
		return nil, err
	}
	// The bias is a constant: it shifts the output and leaves the input
	// gradient dY·W as it is.
	if b := op.k.lin.Bias; b != nil && !op.grad {
		kernels.AddBias(y, b)
	}
	return opMatrix(y, n, out), nil
}

func (op *frozenLinearOp) ReturnsPtr() bool     { return false }
func (op *frozenLinearOp) CallsExtern() bool    { return false }
func (op *frozenLinearOp) OverwritesInput() int { return -1 }

// WriteHash includes the weight's address: gorgonia merges nodes with equal
// hashes and inputs, and q_proj, k_proj and v_proj all read the same input.
func (op *frozenLinearOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "%s{%s,%p}", op.kind(), op.k.lin.Name, op.k.lin)
}

func (op *frozenLinearOp) Hashcode() uint32 { return opHash(op) }

func (op *frozenLinearOp) kind() string {
	if op.grad {
		return "FrozenLinearGrad"
	}
	return "FrozenLinear"
}

func (op *frozenLinearOp) String() string {
	return fmt.Sprintf("%s{%s [%d,%d] %s}", op.kind(), op.k.lin.Name, op.k.lin.Out, op.k.lin.In, linearFormat(op.k.lin))
}

func (op *frozenLinearOp) DiffWRT(inputs int) []bool { return []bool{!op.grad} }

func (op *frozenLinearOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if op.grad {
		return nil, fmt.Errorf("graph: %s: second derivatives of a frozen linear are not supported", op)
	}
	dx, err := gorgonia.ApplyOp(&frozenLinearOp{k: op.k, arena: op.arena, grad: true}, grad)
	if err != nil {
		return nil, fmt.Errorf("graph: gradient of frozen linear %s: %w", op.k.lin.Name, err)
	}
	return gorgonia.Nodes{dx}, nil
}

func linearFormat(lin *model.Linear) string {
	if lin.Quantized != nil {
		return lin.Quantized.Format()
	}
	return "f32"
}

var _ gorgonia.SDOp = (*frozenLinearOp)(nil)
