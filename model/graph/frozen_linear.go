package graph

import (
	"fmt"
	"hash"
	"sync"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/internal/blas"
	"github.com/golora/golora/internal/gemm"
	"github.com/golora/golora/internal/kernels"
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

// A quantized weight is never expanded whole: its products run on
// internal/gemm with the weight as a gemm.Source, so that each block of it is
// decoded straight into the packed panels the micro-kernels read, in the
// goroutines that pack them, once per product (OpenBLAS, in the build that
// has it, cannot take a decoder: the quantized products run on internal/gemm
// there too). The result has the bits of the product with the expanded
// weight.

// mulTSmallRows is the largest number of input rows for which a quantized
// forward pass uses the format's own fused product (Matrix.MulT) instead of
// the matrix product: decoding costs one pass over the weight whatever the
// batch, which pays off once a few rows share it. On a 768×288 NF4 weight the
// matrix product was faster from 2 rows with OpenBLAS and from about 4 with
// gonum.
const mulTSmallRows = 2

// frozenKernel runs products with one frozen weight. It holds no scratch:
// calls may run concurrently.
type frozenKernel struct {
	lin *model.Linear
}

func newFrozenKernel(lin *model.Linear) *frozenKernel { return &frozenKernel{lin: lin} }

// blockDequantizer is implemented by the formats that can decode a block of
// columns of their rows (nf4.Matrix and the ggml block formats); the others
// (quant's FP4, INT4 and INT8) decode whole rows.
type blockDequantizer interface {
	DequantizeBlock(dst []float32, ld, r0, r1, c0, c1 int) error
}

// weightSource is a quantized weight as a gemm.Source for one product. A
// Source cannot return an error, so the first one is kept for the caller.
type weightSource struct {
	lin *model.Linear
	mu  sync.Mutex
	err error
}

func (s *weightSource) Block(dst []float32, ld, r0, r1, c0, c1 int) {
	q := s.lin.Quantized
	var err error
	if bd, ok := q.(blockDequantizer); ok {
		err = bd.DequantizeBlock(dst, ld, r0, r1, c0, c1)
	} else if c0 == 0 && c1 == s.lin.In && ld == s.lin.In {
		err = q.DequantizeRows(dst, r0, r1)
	} else {
		// Whole rows, then the block's columns.
		rows := make([]float32, (r1-r0)*s.lin.In)
		if err = q.DequantizeRows(rows, r0, r1); err == nil {
			for r := range r1 - r0 {
				copy(dst[r*ld:r*ld+c1-c0], rows[r*s.lin.In+c0:r*s.lin.In+c1])
			}
		}
	}
	if err != nil {
		s.mu.Lock()
		if s.err == nil {
			s.err = fmt.Errorf("graph: %s rows [%d, %d) columns [%d, %d): %w", s.lin.Name, r0, r1, c0, c1, err)
		}
		s.mu.Unlock()
	}
}

// mulT computes y = x·Wᵀ for n rows: x is [n, In], y is [n, Out]; y is
// overwritten.
func (k *frozenKernel) mulT(y, x []float32, n int) error {
	lin := k.lin
	if lin.Dense == nil && n <= mulTSmallRows {
		if err := lin.Quantized.MulT(y, x, n); err != nil {
			return fmt.Errorf("graph: %s: %w", lin.Name, err)
		}
		return nil
	}
	return weightProduct(lin, true, n, x, y)
}

// mul computes dx = dy·W for n rows: dy is [n, Out], dx is [n, In]; dx is
// overwritten.
func (k *frozenKernel) mul(dx, dy []float32, n int) error {
	return weightProduct(k.lin, false, n, dy, dx)
}

// weightProduct computes c = a·Wᵀ (transW: a is [m, In], c [m, Out]) or
// c = a·W (a is [m, Out], c [m, In]) for lin's weight W, dense or
// quantized (decoded into the product's panels); c is overwritten.
func weightProduct(lin *model.Linear, transW bool, m int, a, c []float32) error {
	k, n := lin.Out, lin.In
	if transW {
		k, n = n, k
	}
	if lin.Dense != nil {
		blas.ParallelSgemm(false, transW, m, n, k, 1, a, k, lin.Dense, lin.In, 0, c, n)
		return nil
	}
	src := &weightSource{lin: lin}
	gemm.SgemmSource(false, transW, m, n, k, 1, a, k, src, 0, c, n)
	return src.err
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
	return &frozenLinearOp{k: newFrozenKernel(lin), arena: arena}
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
