// Package loragraph puts LoRA adapters (package lora) into the gorgonia
// training graph of package model/graph: Adapter implements graph.Adapter
// with one fused operator per targeted layer, and Params gives the
// trainable tensors with their gradients. It is separate from package lora
// so that serving adapters does not link gorgonia.
package loragraph

import (
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"math/rand/v2"

	"github.com/chewxy/hm"
	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/internal/blas"
	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/internal/parallel"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/graph"
)

// Adapter puts a lora.Adapter into a training graph: it implements
// graph.Adapter, so graph.New asks it for the term of every linear
// layer, and it answers for the layers the adapter targets with
//
//	scaling · (dropout(x)·Aᵀ)·Bᵀ
//
// as PEFT's LoRA layer computes it. A and B become input nodes of the graph
// whose values are tensors backed by the Pair's own A and B slices: an
// optimizer that updates those slices in place updates the graph, and the
// adapter always holds the trained values (ready for Save or AddDelta).
//
// The term is one fused operator per layer, with hand-written gradients for
// x, A and B: gorgonia's generic products would transpose x for every
// layer, allocate every intermediate afresh each run and run single-threaded.
// Adapter is a graph.BufferedAdapter: its operators take their outputs
// and scratch from the graph's arena, so that the graph's machine reclaims a
// term or gradient once its last reader has run.
//
// Dropout (the adapter's Config.Dropout, applied to each targeted layer's
// input with a mask of its own, as each PEFT layer has its own nn.Dropout)
// uses masks held by the Adapter, one bit per input element: the caller
// redraws them before each training run with SampleDropout and turns them
// off for evaluation with DisableDropout. A kept element is scaled by
// 1/(1−Dropout). Masks start disabled.
//
// An Adapter serves one graph. It is not safe for concurrent use, and
// neither is the graph.
type Adapter struct {
	adapter *lora.Adapter
	modules []string // the adapter's modules, in the order of lora.Adapter.Modules
	dropout float64
	keep    float32 // 1/(1−dropout): the factor of a kept input element

	g        *gorgonia.ExprGraph
	attached map[string]*graphPair
	dropOn   bool // masks apply (SampleDropout ran since the last DisableDropout)

	// bufs is the arena of the graph being built or served (the zero
	// Buffers, which allocates, until UseBuffers).
	bufs graph.Buffers
}

// graphPair is one Pair in the graph: its nodes and its operators' kernel.
type graphPair struct {
	a, b *gorgonia.Node
	k    *loraKernel
}

// New returns a Adapter for a, with a's Config.Dropout. The
// adapter must not be merged into the base the graph runs on, or its term
// would count twice.
func New(a *lora.Adapter) (*Adapter, error) {
	if a == nil {
		return nil, errors.New("loragraph: New: nil adapter")
	}
	if err := a.Trainable(); err != nil {
		return nil, fmt.Errorf("loragraph: New: %w", err)
	}
	p := a.Config.Dropout
	if !(p >= 0 && p < 1) {
		return nil, fmt.Errorf("loragraph: New: lora_dropout must be in [0, 1), got %v", p)
	}
	return &Adapter{
		adapter:  a,
		modules:  a.Modules(),
		dropout:  p,
		keep:     float32(1 / (1 - p)),
		attached: make(map[string]*graphPair),
	}, nil
}

// Base returns the LoRA adapter whose A and B the graph trains.
func (ga *Adapter) Base() *lora.Adapter { return ga.adapter }

// Dropout returns the dropout probability of the adapter's input.
func (ga *Adapter) Dropout() float64 { return ga.dropout }

// UseBuffers implements graph.BufferedAdapter. graph.New calls it before
// asking for the terms; once the adapter serves a graph, later calls (from
// another graph, which Delta then refuses) are ignored, so that its
// operators keep drawing from the arena of the graph that runs them.
func (ga *Adapter) UseBuffers(b graph.Buffers) {
	if ga.g == nil {
		ga.bufs = b
	}
}

// Node names are prefixed so that they cannot collide with the model's own
// nodes; gorgonia merges input nodes of equal names.
const (
	nodePrefixA = "lora_A:"
	nodePrefixB = "lora_B:"
)

// Delta implements graph.Adapter. It returns nil for layers the
// adapter does not target.
func (ga *Adapter) Delta(g *gorgonia.ExprGraph, lin *model.Linear, x *gorgonia.Node) (*gorgonia.Node, error) {
	p, ok := ga.adapter.Pair(lin.Name)
	if !ok {
		return nil, nil
	}
	switch {
	case ga.g != nil && ga.g != g:
		return nil, fmt.Errorf("loragraph: module %q: the Adapter already serves another graph", lin.Name)
	case ga.attached[lin.Name] != nil:
		return nil, fmt.Errorf("loragraph: module %q: Delta called twice for the same layer", lin.Name)
	case lin.In != p.In || lin.Out != p.Out:
		return nil, fmt.Errorf("loragraph: module %q: base weight [%d %d] does not match the adapter's [%d %d]", lin.Name, lin.Out, lin.In, p.Out, p.In)
	case len(p.A) != p.R*p.In || len(p.B) != p.Out*p.R:
		return nil, fmt.Errorf("loragraph: module %q: A has %d values and B %d, want %d and %d", lin.Name, len(p.A), len(p.B), p.R*p.In, p.Out*p.R)
	}
	xs := x.Shape()
	if len(xs) != 2 || xs[1] != p.In || xs[0] <= 0 {
		return nil, fmt.Errorf("loragraph: module %q: input has shape %v, want [n %d]", lin.Name, xs, p.In)
	}
	ga.g = g
	k := &loraKernel{ga: ga, bufs: ga.bufs, module: p.Module, n: xs[0], in: p.In, out: p.Out, r: p.R, scaling: float32(p.Scaling())}
	if ga.dropout > 0 {
		k.mask = make([]uint64, (k.n*k.in+63)/64)
	}
	gp := &graphPair{k: k}
	gp.a = gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(p.R, p.In), gorgonia.WithName(nodePrefixA+p.Module),
		gorgonia.WithValue(tensor.New(tensor.WithShape(p.R, p.In), tensor.WithBacking(p.A))))
	gp.b = gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(p.Out, p.R), gorgonia.WithName(nodePrefixB+p.Module),
		gorgonia.WithValue(tensor.New(tensor.WithShape(p.Out, p.R), tensor.WithBacking(p.B))))
	d, err := gorgonia.ApplyOp(&loraOp{k: k, kind: loraForward}, x, gp.a, gp.b)
	if err != nil {
		return nil, fmt.Errorf("loragraph: module %q: %w", p.Module, err)
	}
	ga.attached[p.Module] = gp
	return d, nil
}

// Param is one trainable tensor of a Adapter: the node to
// differentiate with respect to and the values it is backed by.
type Param struct {
	// Name is the tensor's key in PEFT's adapter_model.safetensors, e.g.
	// "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".
	Name string
	// Node is the input node of the graph holding the tensor.
	Node *gorgonia.Node
	// Value is the Pair's A or B slice itself; writing to it changes what
	// the next run of the graph computes.
	Value []float32
}

// Grad returns the gradient that the graph's machine has accumulated for the
// parameter, as a slice aliasing the machine's buffer: zeroing or scaling it
// in place is seen by the next run. It is an error to ask before the first
// run that computes gradients.
func (p Param) Grad() ([]float32, error) {
	gv, err := p.Node.Grad()
	if err != nil {
		return nil, fmt.Errorf("loragraph: gradient of %s: %w", p.Name, err)
	}
	if gv == nil {
		return nil, fmt.Errorf("loragraph: gradient of %s: not computed yet", p.Name)
	}
	g, ok := gv.Data().([]float32)
	if !ok || len(g) != len(p.Value) {
		return nil, fmt.Errorf("loragraph: gradient of %s is a %T of %d elements, want %d float32", p.Name, gv.Data(), gv.Shape().TotalSize(), len(p.Value))
	}
	return g, nil
}

// Params returns the trainable tensors, A then B for each module in the
// order of lora.Adapter.Modules, which does not depend on the graph. It is an
// error if a pair of the adapter has not been attached to the graph (the
// base model has no layer of that name), since that pair would silently go
// untrained.
func (ga *Adapter) Params() ([]Param, error) {
	out := make([]Param, 0, 2*len(ga.modules))
	for _, name := range ga.modules {
		gp := ga.attached[name]
		if gp == nil {
			return nil, fmt.Errorf("loragraph: module %q of the adapter is not a linear layer of the graph", name)
		}
		p, _ := ga.adapter.Pair(name)
		out = append(out,
			Param{Name: lora.TensorKey(name, "lora_A"), Node: gp.a, Value: p.A},
			Param{Name: lora.TensorKey(name, "lora_B"), Node: gp.b, Value: p.B},
		)
	}
	return out, nil
}

// Nodes returns the nodes of Params, to pass to graph.Graph.Differentiate.
func (ga *Adapter) Nodes() (gorgonia.Nodes, error) {
	ps, err := ga.Params()
	if err != nil {
		return nil, err
	}
	nodes := make(gorgonia.Nodes, len(ps))
	for i, p := range ps {
		nodes[i] = p.Node
	}
	return nodes, nil
}

// SampleDropout draws new dropout masks from rng and turns them on for the
// following runs: each input element of each targeted layer is dropped with
// probability Dropout. Masks are drawn module by module in the order of
// lora.Adapter.Modules, so the same generator state gives the same masks. It does
// nothing, and draws nothing, when Dropout is 0.
func (ga *Adapter) SampleDropout(rng *rand.Rand) {
	if ga.dropout == 0 {
		return
	}
	// An element is dropped when a uniform 32-bit draw falls below
	// p·2³², which is exact to 2⁻³²; two draws per 64-bit number.
	threshold := uint64(ga.dropout * (1 << 32))
	for _, name := range ga.modules {
		gp := ga.attached[name]
		if gp == nil {
			continue
		}
		n := gp.k.n * gp.k.in
		mask := gp.k.mask
		clear(mask)
		for i := 0; i < n; i += 2 {
			r := rng.Uint64()
			if r&0xffffffff >= threshold {
				mask[i/64] |= 1 << (i % 64)
			}
			if i+1 < n && r>>32 >= threshold {
				mask[(i+1)/64] |= 1 << ((i + 1) % 64)
			}
		}
	}
	ga.dropOn = true
}

// DisableDropout turns the masks off, for evaluation: the graph then
// computes the adapter's term exactly as inference does.
func (ga *Adapter) DisableDropout() { ga.dropOn = false }

// dropped returns x with the kernel's dropout mask applied (kept elements
// scaled by 1/(1−p)) in a scratch buffer from the arena, which the caller
// releases, or x itself when dropout is off.
func (k *loraKernel) dropped(x []float32) []float32 {
	ga := k.ga
	if !ga.dropOn || k.mask == nil {
		return x
	}
	xm := k.bufs.Floats(len(x))
	k.applyMask(xm, x)
	return xm
}

// applyMask writes src with the dropout mask applied (kept elements scaled
// by 1/(1−p)) to dst, which may be src.
func (k *loraKernel) applyMask(dst, src []float32) {
	keep := k.ga.keep
	for i, v := range src {
		if k.mask[i/64]&(1<<(i%64)) != 0 {
			dst[i] = v * keep
		} else {
			dst[i] = 0
		}
	}
}

// down sets u [n, r] to s·dropout(x)·Aᵀ, the adapter's projection of its
// input, which the forward pass and B's gradient share.
func (k *loraKernel) down(u, x, a []float32) {
	xm := k.dropped(x)
	shrinkRows(u, xm, a, k.n, k.in, k.r, k.scaling)
	k.release(xm, x)
}

// up sets u [n, r] to s·dY·B, dL/du scaled, which the gradients of x and A
// share.
func (k *loraKernel) up(u, dy, b []float32) {
	bt := k.bufs.Floats(k.r * k.out)
	for o := range k.out {
		for j, v := range b[o*k.r : (o+1)*k.r] {
			bt[j*k.out+o] = v
		}
	}
	shrinkRows(u, dy, bt, k.n, k.out, k.r, k.scaling)
	k.bufs.Release(bt)
}

// shrinkRowsMinChunk is the fewest rows a goroutine of shrinkRows takes:
// a row costs about r·cols multiply-adds, some microseconds at training's
// widths, against about one to start a goroutine.
const shrinkRowsMinChunk = 16

// shrinkRows sets u [n, r] to s·x·mᵀ for x [n, cols] and m [r, cols], row
// by row with the low-rank shrink kernel, over all CPUs. A general product
// would pack all of x for an output only r columns wide; the kernel reads
// each row of x where it lies, against m, which stays in cache.
func shrinkRows(u, x, m []float32, n, cols, r int, s float32) {
	parallel.For(n, shrinkRowsMinChunk, 1, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			kernels.LowRankShrink(u[i*r:(i+1)*r], x[i*cols:(i+1)*cols], m, r, cols, s)
		}
	})
}

// release gives back xm, a result of dropped, unless it is x itself.
func (k *loraKernel) release(xm, x []float32) {
	if len(xm) > 0 && &xm[0] != &x[0] {
		k.bufs.Release(xm)
	}
}

// loraKernel is what the operators of one module share: the shapes, the
// scaling, the dropout mask (a bit per element of x, set when kept) and the
// arena their buffers come from.
type loraKernel struct {
	ga            *Adapter
	bufs          graph.Buffers
	module        string
	n, in, out, r int
	scaling       float32
	mask          []uint64
}

// loraOpKind says which of a module's products an operator computes. With
// u = s·xm·Aᵀ, xm = dropout(x) and y = u·Bᵀ, the gradients follow from
// dL/du = dY·B:
//
//	dB = s·dYᵀ·(xm·Aᵀ)    dA = s·(dY·B)ᵀ·xm    dx = mask ⊙ (s·(dY·B)·A)
type loraOpKind int

const (
	loraForward loraOpKind = iota // (x, A, B) → y [n, out]
	loraGradX                     // (dY, A, B) → dx [n, in]
	loraGradA                     // (x, B, dY) → dA [r, in]
	loraGradB                     // (x, A, dY) → dB [out, r]
)

var loraOpNames = [...]string{"LoRADelta", "LoRAGradX", "LoRAGradA", "LoRAGradB"}

// loraOp is one of the fused products of a module. Its output and its
// scratch (a [n, r] work matrix and, under dropout, dropout(x)) come from
// the kernel's arena; the scratch goes back before Do returns, the output
// when the graph's machine is done with it.
type loraOp struct {
	k    *loraKernel
	kind loraOpKind
}

func (op *loraOp) Arity() int { return 3 }

func (op *loraOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, a, a)
}

// shape returns the output shape.
func (op *loraOp) shape() (rows, cols int) {
	k := op.k
	switch op.kind {
	case loraForward:
		return k.n, k.out
	case loraGradX:
		return k.n, k.in
	case loraGradA:
		return k.r, k.in
	}
	return k.out, k.r
}

// inputShapes returns the shapes the operator's three inputs must have.
func (op *loraOp) inputShapes() [3][2]int {
	k := op.k
	x, a, b, dy := [2]int{k.n, k.in}, [2]int{k.r, k.in}, [2]int{k.out, k.r}, [2]int{k.n, k.out}
	switch op.kind {
	case loraForward:
		return [3][2]int{x, a, b}
	case loraGradX:
		return [3][2]int{dy, a, b}
	case loraGradA:
		return [3][2]int{x, b, dy}
	}
	return [3][2]int{x, a, dy}
}

func (op *loraOp) InferShape(inputs ...gorgonia.DimSizer) (tensor.Shape, error) {
	if len(inputs) != 3 {
		return nil, fmt.Errorf("loragraph: %v: got %d input shapes, want 3", op, len(inputs))
	}
	for i, want := range op.inputShapes() {
		s, ok := inputs[i].(tensor.Shape)
		if !ok || len(s) != 2 || s[0] != want[0] || s[1] != want[1] {
			return nil, fmt.Errorf("loragraph: %v: input %d has shape %v, want %v", op, i, inputs[i], want)
		}
	}
	rows, cols := op.shape()
	return tensor.Shape{rows, cols}, nil
}

// floats returns the row-major elements of a float32 matrix value of the
// given shape, copying a non-contiguous view.
func (op *loraOp) floats(v gorgonia.Value, i int, want [2]int) ([]float32, error) {
	d, ok := v.(*tensor.Dense)
	if !ok || d.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("loragraph: %v: input %d is a %T, want a float32 tensor", op, i, v)
	}
	if s := d.Shape(); len(s) != 2 || s[0] != want[0] || s[1] != want[1] {
		return nil, fmt.Errorf("loragraph: %v: input %d has shape %v, want %v", op, i, s, want)
	}
	if d.RequiresIterator() {
		d = d.Materialize().(*tensor.Dense)
	}
	data := d.Float32s()
	if n := want[0] * want[1]; len(data) >= n {
		return data[:n], nil
	}
	return nil, fmt.Errorf("loragraph: %v: input %d holds %d values for shape %v", op, i, len(data), want)
}

func (op *loraOp) Do(inputs ...gorgonia.Value) (gorgonia.Value, error) {
	if len(inputs) != 3 {
		return nil, fmt.Errorf("loragraph: %v: got %d inputs, want 3", op, len(inputs))
	}
	var in [3][]float32
	for i, want := range op.inputShapes() {
		var err error
		if in[i], err = op.floats(inputs[i], i, want); err != nil {
			return nil, err
		}
	}
	k := op.k
	rows, cols := op.shape()
	// Scratch is taken as late and given back as early as the products
	// allow, so that the output can reuse it.
	u := k.bufs.Floats(k.n * k.r)
	var y []float32
	switch op.kind {
	case loraForward:
		x, a, b := in[0], in[1], in[2]
		k.down(u, x, a)
		y = k.bufs.Floats(rows * cols)
		blas.ParallelSgemm(false, true, k.n, k.out, k.r, 1, u, k.r, b, k.r, 0, y, k.out)
	case loraGradX:
		dy, a, b := in[0], in[1], in[2]
		k.up(u, dy, b)
		y = k.bufs.Floats(rows * cols)
		blas.ParallelSgemm(false, false, k.n, k.in, k.r, 1, u, k.r, a, k.in, 0, y, k.in)
		if k.ga.dropOn && k.mask != nil {
			k.applyMask(y, y)
		}
	case loraGradA:
		x, b, dy := in[0], in[1], in[2]
		k.up(u, dy, b)
		xm := k.dropped(x)
		y = k.bufs.Floats(rows * cols)
		blas.Sgemm(true, false, k.r, k.in, k.n, 1, u, k.r, xm, k.in, 0, y, k.in)
		k.release(xm, x)
	case loraGradB:
		x, a, dy := in[0], in[1], in[2]
		k.down(u, x, a)
		y = k.bufs.Floats(rows * cols)
		blas.Sgemm(true, false, k.out, k.r, k.n, 1, dy, k.out, u, k.r, 0, y, k.r)
	}
	k.bufs.Release(u)
	return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(y)), nil
}

func (op *loraOp) ReturnsPtr() bool     { return false }
func (op *loraOp) CallsExtern() bool    { return false }
func (op *loraOp) OverwritesInput() int { return -1 }

// WriteHash names the module and the kernel's address: gorgonia merges
// nodes of equal hashes and inputs.
func (op *loraOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "%s{%s,%p}", loraOpNames[op.kind], op.k.module, op.k)
}

func (op *loraOp) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

func (op *loraOp) String() string {
	return fmt.Sprintf("%s{%s r=%d}", loraOpNames[op.kind], op.k.module, op.k.r)
}

// DiffWRT: the forward product is differentiable in x, A and B; the
// gradient operators are not differentiated again.
func (op *loraOp) DiffWRT(inputs int) []bool {
	d := op.kind == loraForward
	return []bool{d, d, d}
}

func (op *loraOp) SymDiff(inputs gorgonia.Nodes, output, grad *gorgonia.Node) (gorgonia.Nodes, error) {
	if op.kind != loraForward {
		return nil, fmt.Errorf("loragraph: %v is not differentiable", op)
	}
	x, a, b := inputs[0], inputs[1], inputs[2]
	grads := make(gorgonia.Nodes, 3)
	for i, in := range [][3]*gorgonia.Node{{grad, a, b}, {x, b, grad}, {x, a, grad}} {
		var err error
		if grads[i], err = gorgonia.ApplyOp(&loraOp{k: op.k, kind: loraGradX + loraOpKind(i)}, in[0], in[1], in[2]); err != nil {
			return nil, fmt.Errorf("loragraph: gradient of %v: %w", op, err)
		}
	}
	return grads, nil
}

var _ graph.Adapter = (*Adapter)(nil)
