package loragraph

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/tensor"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/graph"
	"github.com/golora/golora/model/infer"
	"github.com/golora/golora/nf4"
)

// graphTestConfig is a small LLaMA with grouped-query attention and an
// untied head, so that lm_head can carry an adapter too.
var graphTestConfig = model.Config{
	Dim: 32, HiddenDim: 48, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8,
	VocabSize: 40, MaxSeqLen: 16, NormEps: 1e-5, RopeTheta: 10000,
}

// graphTestBase builds a random model whose layers all change the residual
// stream noticeably: projections with variance 1/In (q and k 4/In, so
// attention is not uniform), norms 1 ± 0.2, a unit-variance embedding.
// testBase's N(0, 0.02) weights and norms would leave the gradients with
// respect to early layers too small for finite differences.
func graphTestBase(c model.Config, seed uint64) *model.Weights {
	rng := rand.New(rand.NewPCG(seed, 11))
	fill := func(n int, std, mean float64) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(mean + std*rng.NormFloat64())
		}
		return out
	}
	linear := func(lin *model.Linear, gain float64) {
		lin.Dense = fill(lin.Out*lin.In, gain/math.Sqrt(float64(lin.In)), 0)
	}
	w := model.NewWeights(c)
	w.Embedding, w.Norm = fill(c.VocabSize*c.Dim, 1, 0), fill(c.Dim, 0.2, 1)
	for l := range w.Layers {
		layer := &w.Layers[l]
		layer.AttnNorm = fill(c.Dim, 0.2, 1)
		linear(layer.Q, 2)
		linear(layer.K, 2)
		linear(layer.V, 1)
		linear(layer.O, 1)
		layer.MLPNorm = fill(c.Dim, 0.2, 1)
		linear(layer.Gate, 1)
		linear(layer.Up, 1)
		linear(layer.Down, 1)
	}
	linear(w.Output, 1)
	return w
}

// quantizeNF4 quantizes the block linears as QLoRA does (block 64, double
// quantization), leaving the head dense.
func quantizeNF4(t testing.TB, w *model.Weights) {
	t.Helper()
	err := w.Quantize(context.Background(), nf4.Quantizer(nf4.Options{}))
	if err != nil {
		t.Fatal(err)
	}
}

// graphTestBatch is a random batch with next-token targets, the last
// position of each sequence ignored.
func graphTestBatch(seed uint64, batch, seqLen, vocab int) (tokens, targets []int) {
	rng := rand.New(rand.NewPCG(seed, 12))
	tokens = make([]int, batch*seqLen)
	targets = make([]int, batch*seqLen)
	for i := range tokens {
		tokens[i] = rng.IntN(vocab)
	}
	for i := range targets {
		if (i+1)%seqLen == 0 {
			targets[i] = graph.IgnoreTarget
		} else {
			targets[i] = tokens[i+1]
		}
	}
	return tokens, targets
}

// newTrainingGraph builds a graph of w with ga and differentiates it with
// respect to every adapter parameter.
func newTrainingGraph(t testing.TB, w *model.Weights, ga *Adapter, batch, seqLen int) (*graph.Graph, []Param) {
	t.Helper()
	return newTrainingGraphVia(t, w, ga, ga, batch, seqLen)
}

// newTrainingGraphVia is newTrainingGraph with the graph given adapter, which
// wraps ga, in place of ga itself.
func newTrainingGraphVia(t testing.TB, w *model.Weights, ga *Adapter, adapter graph.Adapter, batch, seqLen int) (*graph.Graph, []Param) {
	t.Helper()
	gr, err := graph.New(w, graph.Options{Batch: batch, SeqLen: seqLen, Adapter: adapter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gr.Close() })
	params, err := ga.Params()
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := ga.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gr.Differentiate(nodes...); err != nil {
		t.Fatal(err)
	}
	return gr, params
}

func graphAdapterFor(t testing.TB, w *model.Weights, cfg lora.Config, seed uint64) (*lora.Adapter, *Adapter) {
	t.Helper()
	a := mustNew(t, w, cfg, seed)
	ga, err := New(a)
	if err != nil {
		t.Fatal(err)
	}
	return a, ga
}

// gradCheckConfig targets every block linear and the output head, with a
// scaling (alpha/r = 4) other than one.
func gradCheckConfig() lora.Config {
	cfg := lora.DefaultConfig()
	cfg.R, cfg.Alpha = 4, 16
	cfg.TargetModules = lora.ModuleNames("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")
	return cfg
}

// gradCheckAdapter builds graphTestBase from seed (its block linears in NF4
// when nf4 is set) and an adapter of gradCheckConfig with dropout on it
// (seed+1), with B randomized (seed+2): with B = 0 the gradient of every A
// would be exactly zero.
func gradCheckAdapter(t testing.TB, seed uint64, nf4 bool, dropout float64) (*model.Weights, *lora.Adapter, *Adapter) {
	t.Helper()
	w := graphTestBase(graphTestConfig, seed)
	if nf4 {
		quantizeNF4(t, w)
	}
	cfg := gradCheckConfig()
	cfg.Dropout = dropout
	a, ga := graphAdapterFor(t, w, cfg, seed+1)
	randomize(a, seed+2)
	return w, a, ga
}

// TestGraphAdapterGradient compares the gradients of A and B with central
// differences of the loss, through a dense and through an NF4 base, with and
// without a (fixed) dropout mask.
//
// Tolerance: the graph runs in float32, so each loss carries rounding noise
// of roughly 1e-6 (a few ulps of a loss near ln 40 ≈ 3.7, accumulated over
// the network); with a step of 1e-2 that is ~1e-4 in a difference quotient,
// and the truncation error of the central difference, O(step²), is of the
// same order. Errors are measured relative to the largest gradient component
// of the tensor; the worst seen is 3.5e-3, and 1e-2 leaves a margin of about
// three while a missing factor (the scaling 4, the dropout scale 1/(1−p)),
// a transposed product or an unmasked backward pass is off by 25 % or more.
func TestGraphAdapterGradient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nf4     bool
		dropout float64
	}{
		{"dense", false, 0},
		{"nf4", true, 0},
		{"nf4+dropout", true, 0.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _, ga := gradCheckAdapter(t, 1, tc.nf4, tc.dropout)
			const batch, seqLen = 2, 6
			gr, params := newTrainingGraph(t, w, ga, batch, seqLen)
			tokens, targets := graphTestBatch(4, batch, seqLen, graphTestConfig.VocabSize)
			if err := gr.SetBatch(tokens, targets); err != nil {
				t.Fatal(err)
			}
			if tc.dropout > 0 {
				ga.SampleDropout(rand.New(rand.NewPCG(5, 5)))
			}
			ctx := context.Background()
			if _, err := gr.ForwardBackward(ctx); err != nil {
				t.Fatal(err)
			}
			// The difference quotients run Forward with the same masks.
			var worst float64
			for _, p := range params {
				worst = math.Max(worst, checkParamGradient(t, gr, p, 6, 1e-2))
			}
			t.Logf("worst relative error %.2g over %d tensors", worst, len(params))
		})
	}
}

// checkParamGradient compares p's gradient with central differences on the
// coordinate of largest gradient and count−1 others spread over the tensor,
// and returns the largest error relative to the largest component.
func checkParamGradient(t *testing.T, gr *graph.Graph, p Param, count int, tol float64) float64 {
	t.Helper()
	g, err := p.Grad()
	if err != nil {
		t.Fatal(err)
	}
	grad := append([]float32(nil), g...)
	var scale float64
	largest := 0
	for i, v := range grad {
		if a := math.Abs(float64(v)); a > scale {
			scale, largest = a, i
		}
	}
	if scale == 0 {
		t.Fatalf("%s: gradient is identically zero", p.Name)
	}
	ctx := context.Background()
	loss := func() float64 {
		l, err := gr.Forward(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return float64(l)
	}
	idx := []int{largest}
	for k := 1; k < count; k++ {
		idx = append(idx, (k*7919+13)%len(grad))
	}
	const step = 1e-2
	var worst float64
	for _, i := range idx {
		old := p.Value[i]
		p.Value[i] = old + step
		up := loss()
		p.Value[i] = old - step
		down := loss()
		p.Value[i] = old
		num := (up - down) / (2 * step)
		e := math.Abs(num-float64(grad[i])) / scale
		worst = math.Max(worst, e)
		if e > tol {
			t.Errorf("%s[%d]: analytic %.6g, numeric %.6g (error %.2g of the largest component %.3g)", p.Name, i, grad[i], num, e, scale)
		}
	}
	return worst
}

// TestGraphAdapterZeroBIsBase checks that a fresh adapter (B = 0) leaves the
// loss and the logits of the base model bit for bit.
func TestGraphAdapterZeroBIsBase(t *testing.T) {
	for _, quantized := range []bool{false, true} {
		w := graphTestBase(graphTestConfig, 6)
		if quantized {
			quantizeNF4(t, w)
		}
		const batch, seqLen = 2, 8
		tokens, targets := graphTestBatch(7, batch, seqLen, graphTestConfig.VocabSize)

		base, err := graph.New(w, graph.Options{Batch: batch, SeqLen: seqLen})
		if err != nil {
			t.Fatal(err)
		}
		defer base.Close()
		if err := base.SetBatch(tokens, targets); err != nil {
			t.Fatal(err)
		}
		want, err := base.Forward(context.Background())
		if err != nil {
			t.Fatal(err)
		}

		_, ga := graphAdapterFor(t, w, gradCheckConfig(), 8)
		gr, _ := newTrainingGraph(t, w, ga, batch, seqLen)
		if err := gr.SetBatch(tokens, targets); err != nil {
			t.Fatal(err)
		}
		got, err := gr.ForwardBackward(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("nf4 %t: loss with a B = 0 adapter %v, base %v", quantized, got, want)
		}
		if !sameBits(gr.Logits.Value().Data().([]float32), base.Logits.Value().Data().([]float32)) {
			t.Errorf("nf4 %t: logits with a B = 0 adapter differ from the base model's", quantized)
		}
	}
}

// TestGraphAdapterMatchesAddDelta compares the graph's logits with a
// trained-looking adapter against the plain-Go generator with the adapter's
// AddDelta hook, at every position.
//
// Tolerance: both paths compute in float32 but sum in different orders
// (BLAS blocks against the generator's loops, a different attention
// kernel). With logits of magnitude up to ~5, where a float32 ulp is 4.8e-7,
// the largest difference seen is 5.1e-6 (about ten ulps); 2e-5 allows for
// another BLAS's summation order, while a wrong scaling or a missing module
// changes the logits by far more (the adapter moves them by up to ~4 here,
// checked below).
func TestGraphAdapterMatchesAddDelta(t *testing.T) {
	w, a, ga := gradCheckAdapter(t, 9, true, 0)
	const batch, seqLen = 2, 7
	tokens, targets := graphTestBatch(12, batch, seqLen, graphTestConfig.VocabSize)
	gr, err := graph.New(w, graph.Options{Batch: batch, SeqLen: seqLen, Adapter: ga})
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	if err := gr.SetBatch(tokens, targets); err != nil {
		t.Fatal(err)
	}
	if _, err := gr.Forward(context.Background()); err != nil {
		t.Fatal(err)
	}
	logits := gr.Logits.Value().Data().([]float32)

	withDelta, err := infer.NewGenerator(w, infer.GeneratorOptions{Adapter: a})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := infer.NewGenerator(w, infer.GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v := graphTestConfig.VocabSize
	var worst, moved float64
	for s := range batch {
		withDelta.Reset()
		plain.Reset()
		for pos := range seqLen {
			i := s*seqLen + pos
			want, err := withDelta.Prefill(tokens[i : i+1])
			if err != nil {
				t.Fatal(err)
			}
			base, err := plain.Prefill(tokens[i : i+1])
			if err != nil {
				t.Fatal(err)
			}
			for j := range v {
				worst = math.Max(worst, math.Abs(float64(logits[i*v+j]-want[j])))
				moved = math.Max(moved, math.Abs(float64(want[j]-base[j])))
			}
		}
	}
	t.Logf("largest logit difference graph vs AddDelta %.3g; the adapter moves logits by up to %.3g", worst, moved)
	if worst > 2e-5 {
		t.Errorf("graph logits differ from the generator with AddDelta by %.3g, want ≤ 2e-5", worst)
	}
	if moved < 1e-2 {
		t.Errorf("the adapter moves the logits by only %.3g: the comparison proves nothing", moved)
	}
}

// TestGraphAdapterSharesSlices checks that the graph reads A and B from the
// lora.Pair's slices (an update to them changes the next run) and that running
// the graph, backward pass included, never writes to them.
func TestGraphAdapterSharesSlices(t *testing.T) {
	w := graphTestBase(graphTestConfig, 13)
	a, ga := graphAdapterFor(t, w, gradCheckConfig(), 14)
	randomize(a, 15)
	const batch, seqLen = 1, 5
	gr, params := newTrainingGraph(t, w, ga, batch, seqLen)
	tokens, targets := graphTestBatch(16, batch, seqLen, graphTestConfig.VocabSize)
	if err := gr.SetBatch(tokens, targets); err != nil {
		t.Fatal(err)
	}
	before := make([][]float32, len(params))
	for i, p := range params {
		before[i] = append([]float32(nil), p.Value...)
	}
	ctx := context.Background()
	l1, err := gr.ForwardBackward(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g1, err := params[0].Grad()
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range params {
		if !sameBits(p.Value, before[i]) {
			t.Fatalf("%s changed by a forward-backward run", p.Name)
		}
	}
	q, _ := a.Pair(a.Modules()[0])
	if &params[0].Value[0] != &q.A[0] || &params[1].Value[0] != &q.B[0] {
		t.Fatalf("Params do not alias the A and B of %s", q.Module)
	}
	for i := range q.B {
		q.B[i] *= 3
	}
	l2, err := gr.ForwardBackward(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l1 == l2 {
		t.Errorf("loss %v unchanged after B was tripled: the graph does not read the lora.Pair's slice", l1)
	}
	g2, err := params[0].Grad()
	if err != nil {
		t.Fatal(err)
	}
	if &g1[0] != &g2[0] {
		t.Error("the gradient buffer moved between runs")
	}
}

func TestGraphAdapterDropoutMasks(t *testing.T) {
	w := graphTestBase(graphTestConfig, 17)
	cfg := gradCheckConfig()
	cfg.Dropout = 0.3
	a, ga := graphAdapterFor(t, w, cfg, 18)
	randomize(a, 19)
	const batch, seqLen = 2, 8
	gr, _ := newTrainingGraph(t, w, ga, batch, seqLen)
	tokens, targets := graphTestBatch(20, batch, seqLen, graphTestConfig.VocabSize)
	if err := gr.SetBatch(tokens, targets); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	forward := func() float32 {
		l, err := gr.Forward(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	// Masks start disabled: the loss is that of the same adapter without
	// dropout.
	disabled := forward()
	cfg0 := cfg
	cfg0.Dropout = 0
	a0, err := lora.New(w, cfg0, 18)
	if err != nil {
		t.Fatal(err)
	}
	randomize(a0, 19)
	ga0, err := New(a0)
	if err != nil {
		t.Fatal(err)
	}
	gr0, err := graph.New(w, graph.Options{Batch: batch, SeqLen: seqLen, Adapter: ga0})
	if err != nil {
		t.Fatal(err)
	}
	defer gr0.Close()
	if err := gr0.SetBatch(tokens, targets); err != nil {
		t.Fatal(err)
	}
	noDropout, err := gr0.Forward(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if disabled != noDropout {
		t.Errorf("loss with disabled masks %v, without dropout %v", disabled, noDropout)
	}

	// Same generator state, same masks; the proportion dropped is p.
	ga.SampleDropout(rand.New(rand.NewPCG(1, 2)))
	m1 := forward()
	var dropped, total int
	for _, gp := range ga.attached {
		k := gp.k
		for i := range k.n * k.in {
			if k.mask[i/64]&(1<<(i%64)) == 0 {
				dropped++
			}
			total++
		}
	}
	frac := float64(dropped) / float64(total)
	// Binomial standard deviation √(p(1−p)/n) ≈ 0.005 for n ≈ 8,000.
	if math.Abs(frac-0.3) > 0.03 {
		t.Errorf("dropped %.3f of %d mask elements, want 0.3", frac, total)
	}
	ga.SampleDropout(rand.New(rand.NewPCG(1, 2)))
	if m2 := forward(); m2 != m1 {
		t.Errorf("same seed, different losses %v and %v", m1, m2)
	}
	ga.SampleDropout(rand.New(rand.NewPCG(1, 3)))
	if m3 := forward(); m3 == m1 {
		t.Errorf("another seed gave the same loss %v", m3)
	}
	ga.DisableDropout()
	if l := forward(); l != disabled {
		t.Errorf("after DisableDropout loss %v, want %v", l, disabled)
	}

	// Without dropout SampleDropout draws nothing from the generator.
	rng := rand.New(rand.NewPCG(4, 4))
	ga0.SampleDropout(rng)
	if got, want := rng.Uint64(), rand.New(rand.NewPCG(4, 4)).Uint64(); got != want {
		t.Error("SampleDropout advanced the generator with dropout 0")
	}
}

func TestGraphAdapterErrors(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
	w := graphTestBase(graphTestConfig, 21)
	a, ga := graphAdapterFor(t, w, gradCheckConfig(), 22)
	if _, err := ga.Params(); err == nil {
		t.Error("Params before the graph was built succeeded")
	}
	gr, err := graph.New(w, graph.Options{Batch: 1, SeqLen: 4, Adapter: ga})
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	if _, err := graph.New(w, graph.Options{Batch: 1, SeqLen: 4, Adapter: ga}); err == nil {
		t.Error("a second graph with the same Adapter was built")
	}

	// A base with a different shape for one module.
	other := graphTestBase(graphTestConfig, 21)
	other.Layers[1].Up = &model.Linear{Name: other.Layers[1].Up.Name, Out: 8, In: graphTestConfig.Dim, Dense: make([]float32, 8*graphTestConfig.Dim)}
	ga2, err := New(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := graph.New(other, graph.Options{Batch: 1, SeqLen: 4, Adapter: ga2}); err == nil {
		t.Error("a graph whose up_proj does not match the adapter was built")
	}

	// The adapter must be unmerged.
	dense := graphTestBase(graphTestConfig, 23)
	am := mustNew(t, dense, gradCheckConfig(), 24)
	if err := lora.Merge(dense, am); err != nil {
		t.Fatal(err)
	}
	if _, err := New(am); err == nil {
		t.Error("New accepted a merged adapter")
	}
}

// TestLoRAOpMatchesReference runs the four fused operators of one module on
// random inputs with a dropout mask and compares them with the products
// written out from the definitions in float64:
//
//	y = s·(xm·Aᵀ)·Bᵀ,  xm = mask ⊙ x / (1−p)
//	dx = mask ⊙ (s·(dY·B)·A) / (1−p),  dA = s·(dY·B)ᵀ·xm,  dB = s·dYᵀ·(xm·Aᵀ)
//
// Tolerance: float32 sums of at most 40 products of values below 2 in
// magnitude, against float64; 1e-5 is a few ulps of the results.
func TestLoRAOpMatchesReference(t *testing.T) {
	const n, in, out, r, p = 5, 7, 6, 3, 0.4
	const s = 2.5
	rng := rand.New(rand.NewPCG(30, 31))
	randv := func(k int) []float32 { return normals(rng, k, 1) }
	x, a, b, dy := randv(n*in), randv(r*in), randv(out*r), randv(n*out)
	ga := &Adapter{modules: []string{"m"}, dropout: p, keep: float32(1 / (1 - p))}
	k := &loraKernel{ga: ga, module: "m", n: n, in: in, out: out, r: r, scaling: s, mask: make([]uint64, 1)}
	ga.attached = map[string]*graphPair{"m": {k: k}}
	ga.SampleDropout(rand.New(rand.NewPCG(32, 33)))
	keep := func(i int) float64 {
		if k.mask[i/64]&(1<<(i%64)) != 0 {
			return 1 / (1 - p)
		}
		return 0
	}
	kept := 0
	for i := range n * in {
		if keep(i) != 0 {
			kept++
		}
	}
	if kept == 0 || kept == n*in {
		t.Fatalf("mask keeps %d of %d elements: the test would not see the mask", kept, n*in)
	}

	xm := make([]float64, n*in)
	for i := range xm {
		xm[i] = float64(x[i]) * keep(i)
	}
	u := make([]float64, n*r) // xm·Aᵀ
	g := make([]float64, n*r) // dY·B
	for row := range n {
		for j := range r {
			for c := range in {
				u[row*r+j] += xm[row*in+c] * float64(a[j*in+c])
			}
			for o := range out {
				g[row*r+j] += float64(dy[row*out+o]) * float64(b[o*r+j])
			}
		}
	}
	want := map[loraOpKind][]float64{
		loraForward: make([]float64, n*out),
		loraGradX:   make([]float64, n*in),
		loraGradA:   make([]float64, r*in),
		loraGradB:   make([]float64, out*r),
	}
	for row := range n {
		for o := range out {
			for j := range r {
				want[loraForward][row*out+o] += s * u[row*r+j] * float64(b[o*r+j])
				want[loraGradB][o*r+j] += s * float64(dy[row*out+o]) * u[row*r+j]
			}
		}
		for c := range in {
			for j := range r {
				want[loraGradX][row*in+c] += keep(row*in+c) * s * g[row*r+j] * float64(a[j*in+c])
				want[loraGradA][j*in+c] += s * g[row*r+j] * xm[row*in+c]
			}
		}
	}
	dense := func(v []float32, rows, cols int) *tensor.Dense {
		return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(v))
	}
	inputs := map[loraOpKind][3]*tensor.Dense{
		loraForward: {dense(x, n, in), dense(a, r, in), dense(b, out, r)},
		loraGradX:   {dense(dy, n, out), dense(a, r, in), dense(b, out, r)},
		loraGradA:   {dense(x, n, in), dense(b, out, r), dense(dy, n, out)},
		loraGradB:   {dense(x, n, in), dense(a, r, in), dense(dy, n, out)},
	}
	for kind, w := range want {
		op := &loraOp{k: k, kind: kind}
		in := inputs[kind]
		// Twice: the second run reuses the output buffer.
		for range 2 {
			v, err := op.Do(in[0], in[1], in[2])
			if err != nil {
				t.Fatal(err)
			}
			got := v.Data().([]float32)
			if len(got) != len(w) {
				t.Fatalf("%v: %d values, want %d", op, len(got), len(w))
			}
			for i := range w {
				if math.Abs(float64(got[i])-w[i]) > 1e-5*math.Max(1, math.Abs(w[i])) {
					t.Fatalf("%v[%d] = %v, want %v", op, i, got[i], w[i])
				}
			}
		}
	}
	if _, err := (&loraOp{k: k, kind: loraForward}).Do(inputs[loraForward][0], inputs[loraForward][0], inputs[loraForward][2]); err == nil {
		t.Error("an A of the wrong shape was accepted")
	}
}
