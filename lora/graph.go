package lora

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/model"
)

// GraphAdapter puts an Adapter into a training graph: it implements
// model.LinearAdapter, so model.NewGraph asks it for the term of every linear
// layer, and it answers for the layers the adapter targets with
//
//	scaling · (dropout(x)·Aᵀ)·Bᵀ
//
// as PEFT's LoRA layer computes it. A and B become input nodes of the graph
// whose values are tensors backed by the Pair's own A and B slices: an
// optimizer that updates those slices in place updates the graph, and the
// adapter always holds the trained values (ready for Save or AddDelta).
//
// Dropout (the adapter's Config.Dropout, applied to each targeted layer's
// input with a mask of its own, as each PEFT layer has its own nn.Dropout)
// is a multiplication by mask nodes whose values the caller redraws before
// each training run with SampleDropout and sets to one for evaluation with
// DisableDropout. With Dropout 0 no mask nodes are built. The masks start
// disabled.
//
// A GraphAdapter serves one graph. It is not safe for concurrent use.
type GraphAdapter struct {
	adapter *Adapter
	dropout float64
	keep    float32 // 1/(1−dropout): the value of a kept mask element

	g        *gorgonia.ExprGraph
	attached map[string]*graphPair
}

// graphPair is the nodes of one Pair in the graph.
type graphPair struct {
	pair *Pair
	a, b *gorgonia.Node
	mask []float32 // backing of the dropout mask node; nil without dropout
}

// NewGraphAdapter returns a GraphAdapter for a, with a's Config.Dropout. The
// adapter must not be merged into the base the graph runs on, or its term
// would count twice.
func NewGraphAdapter(a *Adapter) (*GraphAdapter, error) {
	if a == nil {
		return nil, errors.New("lora: NewGraphAdapter: nil adapter")
	}
	if a.merged != nil {
		return nil, errors.New("lora: NewGraphAdapter: the adapter is merged into a base model; Unmerge it before training")
	}
	p := a.Config.Dropout
	if !(p >= 0 && p < 1) {
		return nil, fmt.Errorf("lora: NewGraphAdapter: lora_dropout must be in [0, 1), got %v", p)
	}
	return &GraphAdapter{
		adapter:  a,
		dropout:  p,
		keep:     float32(1 / (1 - p)),
		attached: make(map[string]*graphPair),
	}, nil
}

// Adapter returns the adapter whose A and B the graph trains.
func (ga *GraphAdapter) Adapter() *Adapter { return ga.adapter }

// Dropout returns the dropout probability of the adapter's input.
func (ga *GraphAdapter) Dropout() float64 { return ga.dropout }

// Node names are prefixed so that they cannot collide with the model's own
// nodes; gorgonia merges input nodes of equal names.
const (
	nodePrefixA    = "lora_A:"
	nodePrefixB    = "lora_B:"
	nodePrefixMask = "lora_dropout:"
)

// Delta implements model.LinearAdapter. It returns nil for layers the
// adapter does not target.
func (ga *GraphAdapter) Delta(g *gorgonia.ExprGraph, lin *model.Linear, x *gorgonia.Node) (*gorgonia.Node, error) {
	p, ok := ga.adapter.pairs[lin.Name]
	if !ok {
		return nil, nil
	}
	switch {
	case ga.g != nil && ga.g != g:
		return nil, fmt.Errorf("lora: module %q: the GraphAdapter already serves another graph", lin.Name)
	case ga.attached[lin.Name] != nil:
		return nil, fmt.Errorf("lora: module %q: Delta called twice for the same layer", lin.Name)
	case lin.In != p.In || lin.Out != p.Out:
		return nil, fmt.Errorf("lora: module %q: base weight [%d %d] does not match the adapter's [%d %d]", lin.Name, lin.Out, lin.In, p.Out, p.In)
	case len(p.A) != p.R*p.In || len(p.B) != p.Out*p.R:
		return nil, fmt.Errorf("lora: module %q: A has %d values and B %d, want %d and %d", lin.Name, len(p.A), len(p.B), p.R*p.In, p.Out*p.R)
	}
	xs := x.Shape()
	if len(xs) != 2 || xs[1] != p.In {
		return nil, fmt.Errorf("lora: module %q: input has shape %v, want [n %d]", lin.Name, xs, p.In)
	}
	ga.g = g
	gp := &graphPair{pair: p}
	gp.a = gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(p.R, p.In), gorgonia.WithName(nodePrefixA+p.Module),
		gorgonia.WithValue(tensor.New(tensor.WithShape(p.R, p.In), tensor.WithBacking(p.A))))
	gp.b = gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(p.Out, p.R), gorgonia.WithName(nodePrefixB+p.Module),
		gorgonia.WithValue(tensor.New(tensor.WithShape(p.Out, p.R), tensor.WithBacking(p.B))))

	in := x
	if ga.dropout > 0 {
		gp.mask = make([]float32, xs[0]*xs[1])
		fill(gp.mask, 1)
		mask := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(xs[0], xs[1]), gorgonia.WithName(nodePrefixMask+p.Module),
			gorgonia.WithValue(tensor.New(tensor.WithShape(xs[0], xs[1]), tensor.WithBacking(gp.mask))))
		var err error
		if in, err = gorgonia.HadamardProd(x, mask); err != nil {
			return nil, fmt.Errorf("lora: module %q: dropout: %w", p.Module, err)
		}
	}
	d, err := deltaNodes(in, gp.a, gp.b, p.scaling)
	if err != nil {
		return nil, fmt.Errorf("lora: module %q: %w", p.Module, err)
	}
	ga.attached[p.Module] = gp
	return d, nil
}

// deltaNodes builds scaling·(x·Aᵀ)·Bᵀ. The scaling multiplies the narrow
// [n, r] intermediate rather than the [n, out] result.
func deltaNodes(x, a, b *gorgonia.Node, scaling float64) (*gorgonia.Node, error) {
	at, err := gorgonia.Transpose(a)
	if err != nil {
		return nil, err
	}
	t, err := gorgonia.Mul(x, at)
	if err != nil {
		return nil, err
	}
	if scaling != 1 {
		if t, err = gorgonia.Mul(t, gorgonia.NewConstant(float32(scaling))); err != nil {
			return nil, err
		}
	}
	bt, err := gorgonia.Transpose(b)
	if err != nil {
		return nil, err
	}
	return gorgonia.Mul(t, bt)
}

// GraphParam is one trainable tensor of a GraphAdapter: the node to
// differentiate with respect to and the values it is backed by.
type GraphParam struct {
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
func (p GraphParam) Grad() ([]float32, error) {
	gv, err := p.Node.Grad()
	if err != nil {
		return nil, fmt.Errorf("lora: gradient of %s: %w", p.Name, err)
	}
	if gv == nil {
		return nil, fmt.Errorf("lora: gradient of %s: not computed yet", p.Name)
	}
	g, ok := gv.Data().([]float32)
	if !ok || len(g) != len(p.Value) {
		return nil, fmt.Errorf("lora: gradient of %s is a %T of %d elements, want %d float32", p.Name, gv.Data(), gv.Shape().TotalSize(), len(p.Value))
	}
	return g, nil
}

// Params returns the trainable tensors, A then B for each module in the
// order of Adapter.Modules, which does not depend on the graph. It is an
// error if a pair of the adapter has not been attached to the graph (the
// base model has no layer of that name), since that pair would silently go
// untrained.
func (ga *GraphAdapter) Params() ([]GraphParam, error) {
	out := make([]GraphParam, 0, 2*len(ga.adapter.modules))
	for _, name := range ga.adapter.modules {
		gp := ga.attached[name]
		if gp == nil {
			return nil, fmt.Errorf("lora: module %q of the adapter is not a linear layer of the graph", name)
		}
		out = append(out,
			GraphParam{Name: tensorKey(name, "lora_A"), Node: gp.a, Value: gp.pair.A},
			GraphParam{Name: tensorKey(name, "lora_B"), Node: gp.b, Value: gp.pair.B},
		)
	}
	return out, nil
}

// Nodes returns the nodes of Params, to pass to model.Graph.Differentiate.
func (ga *GraphAdapter) Nodes() (gorgonia.Nodes, error) {
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

// SampleDropout draws new dropout masks from rng for the next run: each
// element is dropped (0) with probability Dropout and otherwise kept and
// scaled by 1/(1−Dropout). Masks are drawn module by module in the order of
// Adapter.Modules, so the same rng state gives the same masks. It does
// nothing, and draws nothing, when Dropout is 0.
func (ga *GraphAdapter) SampleDropout(rng *rand.Rand) {
	if ga.dropout == 0 {
		return
	}
	// An element is dropped when a uniform 32-bit draw falls below
	// p·2³², which is exact to 2⁻³²; two draws per 64-bit number.
	threshold := uint64(ga.dropout * (1 << 32))
	for _, name := range ga.adapter.modules {
		gp := ga.attached[name]
		if gp == nil {
			continue
		}
		m := gp.mask
		i := 0
		for ; i+1 < len(m); i += 2 {
			r := rng.Uint64()
			m[i] = ga.maskValue(r&0xffffffff, threshold)
			m[i+1] = ga.maskValue(r>>32, threshold)
		}
		if i < len(m) {
			m[i] = ga.maskValue(rng.Uint64()&0xffffffff, threshold)
		}
	}
}

func (ga *GraphAdapter) maskValue(u, threshold uint64) float32 {
	if u < threshold {
		return 0
	}
	return ga.keep
}

// DisableDropout sets every mask to one, for evaluation: the graph then
// computes the adapter's term exactly as inference does.
func (ga *GraphAdapter) DisableDropout() {
	for _, gp := range ga.attached {
		fill(gp.mask, 1)
	}
}

func fill(s []float32, v float32) {
	for i := range s {
		s[i] = v
	}
}

var _ model.LinearAdapter = (*GraphAdapter)(nil)
