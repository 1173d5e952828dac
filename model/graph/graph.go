package graph

import (
	"context"
	"errors"
	"fmt"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/model"
)

// Adapter adds trainable terms to frozen linear layers while a Graph is
// built: LoRA implements it with its A and B parameter nodes.
type Adapter interface {
	// Delta is called once for every frozen linear layer of the model, output
	// head included, in the order the forward pass applies them, with the
	// layer's input x ([Batch·SeqLen, lin.In]). It returns a node of shape
	// [Batch·SeqLen, lin.Out] that is added to x·Wᵀ, or nil to leave the
	// layer as it is. Parameter nodes it creates need graph-unique names
	// (gorgonia merges input nodes of equal names; the graph's own are
	// "embedded_tokens" and "targets"); lin.Name is unique per layer.
	Delta(g *gorgonia.ExprGraph, lin *model.Linear, x *gorgonia.Node) (*gorgonia.Node, error)
}

// Options configures New.
type Options struct {
	// Batch and SeqLen fix the shape of every batch the graph runs: Batch
	// sequences of SeqLen tokens, each sequence starting at position 0.
	// SeqLen may not exceed model.Config.MaxSeqLen when that is set.
	Batch, SeqLen int
	// Adapter, if not nil, is asked for a term to add to every frozen linear
	// layer.
	Adapter Adapter
}

// Graph is the training and evaluation forward pass of a frozen LLaMA-family
// model as a gorgonia expression graph: RMSNorm, rotary embeddings in Hugging
// Face's rotate_half layout, causal grouped-query attention, a SwiGLU MLP,
// the output head and the mean next-token cross-entropy. Every linear layer
// is a FrozenLinear node (dense or quantized weights that get no gradient),
// plus the adapter's term, if any.
//
// The token embedding is frozen too, so tokens enter the graph already
// embedded: SetBatch copies the embedding rows into Input, an input node, which
// is also what makes it a valid target of gorgonia.Grad (only input nodes
// are).
//
// Use: New, then optionally Differentiate once with the parameters to
// train; per batch, SetBatch and then Forward (evaluation) or
// ForwardBackward (training).
//
// The graph runs on a machine of its own rather than gorgonia's
// TapeMachine: each value is dropped after the last operator that reads it,
// and its buffer serves the operators that follow, so a training step holds
// the activations its backward pass needs and little else. The values of a
// run (Loss, Logits) live in buffers that the next run reuses, so that a
// training step allocates almost nothing: copy what must outlive the run.
// Intermediate nodes are not bound to values. The accumulated gradients of
// the nodes passed to Differentiate persist. A Graph is not safe for
// concurrent use.
type Graph struct {
	// Input is the embedded tokens [Batch·SeqLen, Dim], row b·SeqLen + t
	// holding token t of sequence b. Its gradient (pass it to Differentiate)
	// is the gradient with respect to the whole network's input.
	Input *gorgonia.Node
	// Targets is the next-token targets [Batch, SeqLen] (Int); IgnoreTarget
	// marks positions left out of the loss.
	Targets *gorgonia.Node
	// Logits is [Batch·SeqLen, VocabSize], valid after Forward until the
	// next run. ForwardBackward computes it only when Loss is not fused
	// (see Loss).
	Logits *gorgonia.Node
	// Loss is the mean cross-entropy over the targets that are not
	// IgnoreTarget (a float32 scalar; 0 when every target is ignored), the
	// node Differentiate differentiates. With a dense head that the adapter
	// leaves alone it is computed from the final hidden states by one
	// operator that never holds the whole [Batch·SeqLen, VocabSize] logits
	// or their gradient; otherwise from Logits.
	Loss *gorgonia.Node

	// evalLoss is the loss computed from Logits, which Forward runs (the
	// same node as Loss when that is not fused).
	evalLoss *gorgonia.Node

	g       *gorgonia.ExprGraph
	w       *model.Weights
	opts    Options
	input   *tensor.Dense
	targets *tensor.Dense
	loaded  bool

	arena *graphArena

	wrt   gorgonia.Nodes
	grads gorgonia.Nodes
	eval  *machine
	train *machine
}

// New builds the forward graph of w for batches of opts.Batch sequences
// of opts.SeqLen tokens. The weights are read, never written, and must not be
// modified while the graph is in use.
func New(w *model.Weights, opts Options) (*Graph, error) {
	if w == nil {
		return nil, errors.New("graph: New: nil weights")
	}
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("graph: New: %w", err)
	}
	c := w.Config
	switch {
	case opts.Batch <= 0 || opts.SeqLen <= 0:
		return nil, fmt.Errorf("graph: New: batch %d × sequence length %d must be positive", opts.Batch, opts.SeqLen)
	case c.MaxSeqLen > 0 && opts.SeqLen > c.MaxSeqLen:
		return nil, fmt.Errorf("graph: New: sequence length %d exceeds the model's %d positions", opts.SeqLen, c.MaxSeqLen)
	case c.RopeScaling.Type == "longrope" && opts.SeqLen > c.RopeScaling.OriginalMaxPos:
		return nil, fmt.Errorf("graph: New: sequence length %d exceeds the model's %d original positions, beyond which longrope switches to its long factors, which golora does not implement",
			opts.SeqLen, c.RopeScaling.OriginalMaxPos)
	}
	rows := opts.Batch * opts.SeqLen
	gr := &Graph{
		g:       gorgonia.NewGraph(),
		w:       w,
		opts:    opts,
		input:   tensor.New(tensor.WithShape(rows, c.Dim), tensor.Of(tensor.Float32)),
		targets: tensor.New(tensor.WithShape(opts.Batch, opts.SeqLen), tensor.Of(tensor.Int)),
		arena:   newGraphArena(),
	}
	gr.Input = gorgonia.NewMatrix(gr.g, tensor.Float32, gorgonia.WithShape(rows, c.Dim),
		gorgonia.WithName("embedded_tokens"), gorgonia.WithValue(gr.input))
	gr.Targets = gorgonia.NewMatrix(gr.g, tensor.Int, gorgonia.WithShape(opts.Batch, opts.SeqLen),
		gorgonia.WithName("targets"), gorgonia.WithValue(gr.targets))
	if ba, ok := opts.Adapter.(BufferedAdapter); ok {
		ba.UseBuffers(Buffers{gr.arena})
	}
	if err := gr.build(); err != nil {
		return nil, fmt.Errorf("graph: New: %w", err)
	}
	return gr, nil
}

func (gr *Graph) build() error {
	c := gr.w.Config
	table, err := newRopeTable(gr.opts.SeqLen, c.HeadDim, c.RopeTheta, gr.w.RopeInvFreq(), c.RopeScaling.AngleScale())
	if err != nil {
		return err
	}
	attn := newAttentionOp(attentionShape{
		batch: gr.opts.Batch, seqLen: gr.opts.SeqLen,
		heads: c.Heads, kvHeads: c.KVHeads, headDim: c.HeadDim,
		window: c.SlidingWindow,
	}, gr.arena)
	h := gr.Input
	for l := range gr.w.Layers {
		if h, err = gr.block(l, h, table, attn); err != nil {
			return fmt.Errorf("layer %d: %w", l, err)
		}
	}
	hn, err := applyRMSNorm(h, gr.w.Norm, c.NormEps, "model.norm", gr.arena)
	if err != nil {
		return err
	}
	head := gr.w.Output
	d, err := gr.delta(head, hn)
	if err != nil {
		return err
	}
	if gr.Logits, err = gr.addDelta(head, hn, d); err != nil {
		return err
	}
	if gr.evalLoss, err = crossEntropy(gr.Logits, gr.Targets, c.VocabSize, gr.arena); err != nil {
		return err
	}
	if d != nil {
		// A head with an adapter term trains through the logits.
		gr.Loss = gr.evalLoss
		return nil
	}
	gr.Loss, err = headLoss(head, hn, gr.Targets, gr.arena)
	return err
}

// block appends transformer block l to the residual stream h.
func (gr *Graph) block(l int, h *gorgonia.Node, table *ropeTable, attn *attentionOp) (*gorgonia.Node, error) {
	c := gr.w.Config
	layer := &gr.w.Layers[l]
	prefix := fmt.Sprintf("model.layers.%d.", l)
	xn, err := applyRMSNorm(h, layer.AttnNorm, c.NormEps, prefix+"input_layernorm", gr.arena)
	if err != nil {
		return nil, err
	}
	var q, k, v *gorgonia.Node
	for _, p := range []struct {
		dst **gorgonia.Node
		lin *model.Linear
	}{{&q, layer.Q}, {&k, layer.K}, {&v, layer.V}} {
		if *p.dst, err = gr.linear(p.lin, xn); err != nil {
			return nil, err
		}
	}
	if c.QKNorm {
		if q, err = applyHeadNorm(q, layer.QNorm, c, prefix+"self_attn.q_norm", gr.arena); err != nil {
			return nil, err
		}
		if k, err = applyHeadNorm(k, layer.KNorm, c, prefix+"self_attn.k_norm", gr.arena); err != nil {
			return nil, err
		}
	}
	if q, err = applyRoPE(q, table, c.Heads, gr.arena); err != nil {
		return nil, err
	}
	if k, err = applyRoPE(k, table, c.KVHeads, gr.arena); err != nil {
		return nil, err
	}
	a, err := applyAttention(attn, q, k, v)
	if err != nil {
		return nil, err
	}
	o, err := gr.linear(layer.O, a)
	if err != nil {
		return nil, err
	}
	if h, err = applyAdd(h, o, gr.arena); err != nil {
		return nil, fmt.Errorf("attention residual: %w", err)
	}
	xn, err = applyRMSNorm(h, layer.MLPNorm, c.NormEps, prefix+"post_attention_layernorm", gr.arena)
	if err != nil {
		return nil, err
	}
	gate, err := gr.linear(layer.Gate, xn)
	if err != nil {
		return nil, err
	}
	up, err := gr.linear(layer.Up, xn)
	if err != nil {
		return nil, err
	}
	m, err := applySwiGLU(gate, up, gr.arena)
	if err != nil {
		return nil, err
	}
	down, err := gr.linear(layer.Down, m)
	if err != nil {
		return nil, err
	}
	if h, err = applyAdd(h, down, gr.arena); err != nil {
		return nil, fmt.Errorf("MLP residual: %w", err)
	}
	return h, nil
}

// applyHeadNorm RMS-normalizes every head of x, [rows, heads·HeadDim], with
// weight [HeadDim] (Qwen3's q_norm and k_norm). It views x as
// [rows·heads, HeadDim] for the RMSNorm operator, whose backward serves here
// too, and back.
func applyHeadNorm(x *gorgonia.Node, weight []float32, c model.Config, name string, arena *graphArena) (*gorgonia.Node, error) {
	shape := x.Shape()
	if len(shape) != 2 || shape[1]%c.HeadDim != 0 {
		return nil, fmt.Errorf("graph: %s: input shape %v is not [rows, heads·%d]", name, shape, c.HeadDim)
	}
	heads, err := gorgonia.Reshape(x, tensor.Shape{shape[0] * shape[1] / c.HeadDim, c.HeadDim})
	if err != nil {
		return nil, fmt.Errorf("graph: %s: %w", name, err)
	}
	y, err := applyRMSNorm(heads, weight, c.NormEps, name, arena)
	if err != nil {
		return nil, err
	}
	if y, err = gorgonia.Reshape(y, shape.Clone()); err != nil {
		return nil, fmt.Errorf("graph: %s: %w", name, err)
	}
	return y, nil
}

// linear is the frozen product x·Wᵀ plus the adapter's term for lin.
func (gr *Graph) linear(lin *model.Linear, x *gorgonia.Node) (*gorgonia.Node, error) {
	d, err := gr.delta(lin, x)
	if err != nil {
		return nil, err
	}
	return gr.addDelta(lin, x, d)
}

// delta returns the adapter's term for lin applied to x, nil when there is
// none.
func (gr *Graph) delta(lin *model.Linear, x *gorgonia.Node) (*gorgonia.Node, error) {
	if gr.opts.Adapter == nil {
		return nil, nil
	}
	d, err := gr.opts.Adapter.Delta(gr.g, lin, x)
	if err != nil {
		return nil, fmt.Errorf("adapter for %s: %w", lin.Name, err)
	}
	return d, nil
}

// addDelta is the frozen product x·Wᵀ plus d, the adapter's term (or nil).
func (gr *Graph) addDelta(lin *model.Linear, x, d *gorgonia.Node) (*gorgonia.Node, error) {
	y, err := frozenLinear(lin, x, gr.arena)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return y, nil
	}
	if !d.Shape().Eq(y.Shape()) {
		return nil, fmt.Errorf("adapter for %s: delta has shape %v, want %v", lin.Name, d.Shape(), y.Shape())
	}
	if y, err = applyAdd(y, d, gr.arena); err != nil {
		return nil, fmt.Errorf("adapter for %s: %w", lin.Name, err)
	}
	return y, nil
}

// ExprGraph returns the underlying gorgonia graph, to which adapters add their
// parameters.
func (gr *Graph) ExprGraph() *gorgonia.ExprGraph { return gr.g }

// Weights returns the frozen weights the graph runs on.
func (gr *Graph) Weights() *model.Weights { return gr.w }

// Options returns the options the graph was built with.
func (gr *Graph) Options() Options { return gr.opts }

// SetBatch loads a batch: tokens and targets hold Batch·SeqLen ids each,
// sequence after sequence. targets[i] is the token expected after tokens[i]
// (usually tokens[i+1] within a sequence), or IgnoreTarget to leave position i
// out of the loss. Nothing is changed when an id is out of range.
func (gr *Graph) SetBatch(tokens, targets []int) error {
	n := gr.opts.Batch * gr.opts.SeqLen
	if len(tokens) != n || len(targets) != n {
		return fmt.Errorf("graph: SetBatch: %d tokens and %d targets, want batch %d × sequence length %d = %d each",
			len(tokens), len(targets), gr.opts.Batch, gr.opts.SeqLen, n)
	}
	v := gr.w.Config.VocabSize
	for i := range n {
		if t := tokens[i]; t < 0 || t >= v {
			return fmt.Errorf("graph: SetBatch: token %d at sequence %d position %d is outside the vocabulary [0, %d)",
				t, i/gr.opts.SeqLen, i%gr.opts.SeqLen, v)
		}
		if t := targets[i]; t != IgnoreTarget && (t < 0 || t >= v) {
			return fmt.Errorf("graph: SetBatch: target %d at sequence %d position %d is outside the vocabulary [0, %d) and is not IgnoreTarget",
				t, i/gr.opts.SeqLen, i%gr.opts.SeqLen, v)
		}
	}
	d := gr.w.Config.Dim
	x := gr.input.Float32s()
	for i, t := range tokens {
		if err := gr.w.EmbedToken(x[i*d:(i+1)*d], t); err != nil {
			return fmt.Errorf("graph: SetBatch: %w", err)
		}
	}
	copy(gr.targets.Ints(), targets)
	gr.loaded = true
	return nil
}

// Differentiate adds to the graph the gradient of Loss with respect to wrt,
// which must be input nodes of the graph (adapter parameters, or Input), and
// returns the gradient nodes in the same order. Call it once, before the
// first ForwardBackward.
//
// After each ForwardBackward, wrt[i].Grad(), which is also the value of
// the returned gradient node, holds the gradient summed over every
// ForwardBackward since it was last zeroed by ZeroGrad (or by hand, in
// place: the buffer stays the same from run to run).
func (gr *Graph) Differentiate(wrt ...*gorgonia.Node) (gorgonia.Nodes, error) {
	if gr.grads != nil {
		return nil, errors.New("graph: Differentiate: already called for this graph")
	}
	if len(wrt) == 0 {
		return nil, errors.New("graph: Differentiate: no nodes to differentiate with respect to")
	}
	grads, err := gorgonia.Grad(gr.Loss, wrt...)
	if err != nil {
		return nil, fmt.Errorf("graph: Differentiate: %w", err)
	}
	gr.wrt = append(gorgonia.Nodes(nil), wrt...)
	gr.grads = grads
	return grads, nil
}

// Forward runs the forward pass on the loaded batch and returns the loss;
// Logits holds the logits afterwards. No gradient is computed. ctx is checked
// before the run starts; a started run is not interrupted.
func (gr *Graph) Forward(ctx context.Context) (float32, error) {
	if gr.eval == nil {
		m, err := newMachine(gr.g, gr.arena, gorgonia.Nodes{gr.evalLoss, gr.Logits}, nil)
		if err != nil {
			return 0, fmt.Errorf("graph: Forward: %w", err)
		}
		gr.eval = m
	}
	return gr.run(ctx, gr.eval, gr.evalLoss, "Forward")
}

// ForwardBackward runs the forward pass and the gradients added by
// Differentiate on the loaded batch, and returns the loss. It leaves Logits
// uncomputed when Loss is fused. ctx is checked before the run starts.
func (gr *Graph) ForwardBackward(ctx context.Context) (float32, error) {
	if gr.grads == nil {
		return 0, errors.New("graph: ForwardBackward: call Differentiate first")
	}
	if gr.train == nil {
		roots := gorgonia.Nodes{gr.Loss}
		if gr.Loss == gr.evalLoss {
			roots = append(roots, gr.Logits)
		}
		m, err := newMachine(gr.g, gr.arena, append(roots, gr.grads...), gr.wrt)
		if err != nil {
			return 0, fmt.Errorf("graph: ForwardBackward: %w", err)
		}
		gr.train = m
	}
	return gr.run(ctx, gr.train, gr.Loss, "ForwardBackward")
}

func (gr *Graph) run(ctx context.Context, m *machine, lossNode *gorgonia.Node, what string) (float32, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("graph: %s: %w", what, err)
	}
	if !gr.loaded {
		return 0, fmt.Errorf("graph: %s: no batch loaded (call SetBatch)", what)
	}
	gr.arena.reset()
	if err := m.run(); err != nil {
		return 0, fmt.Errorf("graph: %s: %w", what, err)
	}
	loss, err := opScalar(lossNode.Value(), crossEntropyOp{}, "loss")
	if err != nil {
		return 0, fmt.Errorf("graph: %s: %w", what, err)
	}
	return loss, nil
}

// ZeroGrad sets the accumulated gradients of the nodes passed to
// Differentiate to zero.
func (gr *Graph) ZeroGrad() error {
	for _, n := range gr.wrt {
		g, err := n.Grad()
		if err != nil || g == nil {
			// No run has bound a gradient yet: nothing to zero.
			continue
		}
		t, ok := g.(tensor.Tensor)
		if !ok {
			return fmt.Errorf("graph: ZeroGrad: gradient of %s is a %T", n.Name(), g)
		}
		t.Zero()
	}
	return nil
}

// Close releases the machines' resources. The Graph must not be used
// afterwards.
func (gr *Graph) Close() error {
	gr.eval, gr.train = nil, nil
	gr.arena.reset()
	return nil
}
