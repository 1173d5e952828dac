package infer

import (
	"errors"
	"fmt"

	"github.com/golora/golora/internal/hugemem"
	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/model"
)

// Batch runs many sequences forward together, each with its own KV cache and
// its own adapter: the step of continuous batching. In a step every frozen
// linear layer is multiplied once over the tokens of all rows (for NF4, the
// weight is expanded once for the whole batch), while each adapter's
// low-rank term is applied to its group of rows only: adjacent rows with the
// same Adapter form one group, so callers order rows by adapter. From
// panelMinTokens tokens on, a product is kernels.MulTPanels over all the
// tokens (quantized weights expanded a tile at a time with DequantizeRows,
// once per step); fewer tokens take the Generator's matrix-vector kernels.
// Products are split by weight rows (Q, K and V as one product, gate and up
// as one), attention (each token against its own sequence's cache) by rows,
// over GOMAXPROCS goroutines of the Batch's own. A LowRankAdapter's terms
// take no run of their own (its shrinks run with the packing of the
// product's input, its expands with the product); other adapters' AddDelta
// runs after the product, split by tokens. It runs every architecture the Generator
// runs (biases, q/k norms, partial rotary, rope scaling, sliding windows)
// with the same kernels but attention's (the same sums added in another
// order), and a step does not allocate once its scratch has grown.
//
// A Batch is not safe for concurrent use; its sequences belong to it.
type Batch struct {
	w       *model.Weights
	qDim    int
	kvDim   int
	maxLen  int       // positions a sequence can hold
	invFreq []float64 // RoPE frequencies (model.Weights.RopeInvFreq), [Rotary/2]
	angle   float32   // RoPE attention scaling (model.Config.RopeScaling.AngleScale)

	batchScratch

	team *batchTeam
	job  *job    // its own allocation: the team's goroutines must not keep the Batch alive
	lr   *lrPlan // the adapter terms of the product being prepared or run
}

// batchScratch is a Batch's scratch, grown to the largest step (Trim drops
// it): [tokens, width].
type batchScratch struct {
	x, xn, q, k, v, attn, proj, gate, up []float32
	cos, sin                             []float32
	last                                 []float32 // final-norm rows of the rows that want logits
	logits                               []float32
	panels                               []float32 // the input of the linears being run, packed (kernels.PackPanels)
	panels2                              []float32 // the down projection's input, packed while panels is read (mlpIn)
	want                                 []BatchRow
	wantLogits                           [][]float32 // the Logits of want, which the head writes into directly
}

// BatchRow is one sequence's part of a step: a chunk of its prompt or its
// last generated token.
type BatchRow struct {
	Seq    *Sequence
	Tokens []int
	// Adapter adds the row's adapter term; nil for the base model. A Batch
	// may call it from several goroutines at once (on different rows), so
	// it must be safe for concurrent use.
	Adapter Adapter
	// Logits, if not nil, receives the logits [VocabSize] predicting the
	// token after the row's last one.
	Logits []float32
	// AllLogits, if not nil, receives the logits of every token of the
	// row, [len(Tokens), VocabSize]: row t predicts the token after
	// Tokens[t] (scoring a prompt). Nil, the step computes no more than
	// Logits asks.
	AllLogits []float32
}

// LowRankAdapter is an Adapter whose terms are low-rank products that a
// Batch runs itself instead of calling AddDelta: the shrink s = Scale·A·x of
// every row inside the team run that packs x (no run of its own), the
// expand y += Bᵀᵀ·s inside the product's run, each part on the columns it
// has just computed. So an adapter costs a step no barrier of its own, and
// its matrices are read while the base product's are.
type LowRankAdapter interface {
	Adapter
	// LowRank returns the adapter's term at lin, R 0 for none. A Batch
	// calls it from its own goroutine, once per step and product; the
	// matrices must stay unchanged while the step runs.
	LowRank(lin *model.Linear) (LowRank, error)
}

// LowRank is one linear layer's adapter term y += Scale·(x·Aᵀ)·Bᵀ, as
// kernels.LowRankShrink and LowRankExpand take it: A [R, In] and B
// transposed, Bᵀ [R, Out], in float32 (A, BT) or binary16 (A16, BT16).
type LowRank struct {
	R         int
	Scale     float32
	A, BT     []float32
	A16, BT16 []uint16
}

// Sequence is the KV cache of one sequence of a Batch.
type Sequence struct {
	pos, maxLen  int
	keys, values [][]float32    // per layer, [capacity, kvDim]
	mem          *hugemem.Arena // where keys and values live (kvcache.go)
}

// Pos returns the number of positions filled.
func (s *Sequence) Pos() int { return s.pos }

// MaxLen returns the number of positions the cache can hold.
func (s *Sequence) MaxLen() int { return s.maxLen }

// Reset empties the sequence for reuse by another one: its memory is kept
// (and overwritten as positions are filled again).
func (s *Sequence) Reset() { s.pos = 0 }

// NewBatch checks w with Validate and returns a Batch running it.
func NewBatch(w *model.Weights) (*Batch, error) {
	if w == nil {
		return nil, errors.New("infer: NewBatch: weights are nil")
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	c := w.Config
	b := &Batch{
		w:       w,
		qDim:    c.Heads * c.HeadDim,
		kvDim:   c.KVHeads * c.HeadDim,
		maxLen:  ropeMaxLen(&c, c.MaxSeqLen),
		invFreq: w.RopeInvFreq(),
		angle:   c.RopeScaling.AngleScale(),
	}
	maxIn := 0
	for _, lin := range append(w.Linears(), w.Output) {
		maxIn = max(maxIn, lin.In)
	}
	b.team = newBatchTeam(b, c.MaxSeqLen, maxIn)
	b.job = new(job)
	b.lr = new(lrPlan)
	return b, nil
}

// Workers returns the number of goroutines Parallel runs on: the caller
// and the Batch's helpers.
func (b *Batch) Workers() int { return len(b.team.ws) }

// Parallel calls fn(worker, i) for i in [0, n) on the calling goroutine and
// the Batch's helpers, each i once, and returns when all have returned;
// worker, in [0, Workers()), tells the goroutines apart. It lends the
// helpers, awake after a step, to the caller's own work on the step's
// results (a server's draws of the next tokens), where starting goroutines
// would cost a wake-up each. It must not run concurrently with Step.
func (b *Batch) Parallel(n int, fn func(worker, i int)) {
	if n <= 0 {
		return
	}
	t := b.team.team
	if t == nil || n == 1 {
		for i := range n {
			fn(0, i)
		}
		return
	}
	t.hold()
	defer t.release()
	_ = t.run(min(n, maxChunks), func(worker, i int) error { // fn returns no error
		fn(worker, i)
		return nil
	})
}

// Weights returns the model the Batch runs.
func (b *Batch) Weights() *model.Weights { return b.w }

// MaxLen returns the most positions a sequence can hold: Config.MaxSeqLen,
// or for longrope the model's original positions (see GeneratorOptions).
func (b *Batch) MaxLen() int { return b.maxLen }

// NewSequence returns an empty KV cache of maxLen positions (at most
// MaxLen). Its memory is reserved now, so a budget of positions bounds the
// memory of the caches, and taken as positions are filled (kvcache.go);
// Free returns it.
func (b *Batch) NewSequence(maxLen int) (*Sequence, error) {
	if maxLen <= 0 || maxLen > b.maxLen {
		return nil, fmt.Errorf("infer: NewSequence: length %d must be in [1, %d]", maxLen, b.maxLen)
	}
	s := &Sequence{maxLen: maxLen, keys: make([][]float32, len(b.w.Layers)), values: make([][]float32, len(b.w.Layers))}
	if err := b.allocKV(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Trim releases the scratch that steps have grown (a few MB after steps of
// hundreds of tokens: prompt chunks) and the team's workspaces; the next
// step makes them again. A server calls it when it has gone idle.
func (b *Batch) Trim() {
	b.batchScratch = batchScratch{}
	b.lr.terms, b.lr.s = nil, nil
	b.team.trim()
}

// grow returns buf with at least n elements.
func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}

// Step runs every row's tokens at its sequence's next positions and fills
// the Logits of the rows that ask. The rows must name distinct sequences. On
// error no sequence has advanced.
func (b *Batch) Step(rows []BatchRow) error {
	c := &b.w.Config
	n := 0
	for i, r := range rows {
		if r.Seq == nil || len(r.Tokens) == 0 {
			return fmt.Errorf("infer: Batch.Step: row %d has no sequence or no tokens", i)
		}
		if err := r.Seq.usable(); err != nil {
			return fmt.Errorf("infer: Batch.Step: row %d: %w", i, err)
		}
		if r.Seq.pos+len(r.Tokens) > r.Seq.maxLen {
			return fmt.Errorf("infer: Batch.Step: row %d: %w: %d positions used + %d tokens > %d", i, ErrContextFull, r.Seq.pos, len(r.Tokens), r.Seq.maxLen)
		}
		if r.Logits != nil && len(r.Logits) != c.VocabSize {
			return fmt.Errorf("infer: Batch.Step: row %d: logits of length %d, want %d", i, len(r.Logits), c.VocabSize)
		}
		if r.AllLogits != nil && len(r.AllLogits) != len(r.Tokens)*c.VocabSize {
			return fmt.Errorf("infer: Batch.Step: row %d: all-token logits of length %d, want %d tokens × %d", i, len(r.AllLogits), len(r.Tokens), c.VocabSize)
		}
		for j, t := range r.Tokens {
			if t < 0 || t >= c.VocabSize {
				return fmt.Errorf("infer: Batch.Step: row %d: token %d (index %d) is outside the vocabulary [0, %d)", i, t, j, c.VocabSize)
			}
		}
		for _, o := range rows[:i] {
			if o.Seq == r.Seq {
				return fmt.Errorf("infer: Batch.Step: row %d names the sequence of an earlier row", i)
			}
		}
		n += len(r.Tokens)
	}
	if n == 0 {
		return nil
	}
	// The step is some forty runs of the team with serial code between
	// them: its helpers stay awake for all of it.
	b.team.team.hold()
	defer b.team.team.release()
	d, half := c.Dim, len(b.invFreq)
	b.x, b.xn = grow(b.x, n*d), grow(b.xn, n*d)
	b.q, b.attn = grow(b.q, n*b.qDim), grow(b.attn, n*b.qDim)
	b.k, b.v = grow(b.k, n*b.kvDim), grow(b.v, n*b.kvDim)
	b.proj = grow(b.proj, n*d)
	b.gate, b.up = grow(b.gate, n*c.HiddenDim), grow(b.up, n*c.HiddenDim)
	b.cos, b.sin = grow(b.cos, n*half), grow(b.sin, n*half)
	t := 0
	for _, r := range rows {
		for j, tok := range r.Tokens {
			if err := b.w.EmbedToken(b.x[t*d:(t+1)*d], tok); err != nil {
				return fmt.Errorf("infer: Batch.Step: %w", err)
			}
			kernels.RopeAnglesScaled(b.cos[t*half:(t+1)*half], b.sin[t*half:(t+1)*half], r.Seq.pos+j, b.invFreq, b.angle)
			t++
		}
	}
	x, xn, q, k, v := b.x, b.xn, b.q, b.k, b.v
	eps := c.NormEps
	for l := range b.w.Layers {
		layer := &b.w.Layers[l]
		kernels.RMSNorm(xn, x, layer.AttnNorm, eps)
		qkv := [...]fused{{layer.Q, q}, {layer.K, k}, {layer.V, v}}
		if err := b.prepare(rows, xn, n, d, qkv[:]...); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		if err := b.linear(rows, xn, qkv[:]...); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		o := fused{layer.O, b.proj}
		if err := b.plan(rows, b.attn, o); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		if err := b.attention(rows, l, n); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		if err := b.linearAdd(rows, b.attn, x, o); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		kernels.RMSNorm(xn, x, layer.MLPNorm, eps)
		gateUp := [...]fused{{layer.Gate, b.gate}, {layer.Up, b.up}}
		if err := b.prepare(rows, xn, n, d, gateUp[:]...); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		if err := b.mlpIn(rows, xn, n, gateUp); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		down := fused{layer.Down, b.proj}
		if err := b.plan(rows, b.gate, down); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		if err := b.linearAdd(rows, b.gate, x, down); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
	}
	for _, r := range rows {
		r.Seq.pos += len(r.Tokens)
	}
	err := b.outputs(rows)
	// The scratch does not keep sequences and adapters of this step alive.
	clear(b.want)
	clear(b.wantLogits)
	*b.job = job{}
	b.lr.reset()
	return err
}

// outputs computes the logits the rows want: each row's Logits, the output
// head run once over their last tokens, then the AllLogits, the head run
// over every token of those rows. The second pass runs only when a row asks
// (scoring a prompt), so the decoding steps of a server pay nothing for it.
func (b *Batch) outputs(rows []BatchRow) error {
	if err := b.head(rows, BatchRow.lastOutput); err != nil {
		return err
	}
	return b.head(rows, BatchRow.allOutputs)
}

// lastOutput is the token of r whose logits go into Logits, its last.
func (r BatchRow) lastOutput() ([]int, []float32) {
	return r.Tokens[len(r.Tokens)-1:], r.Logits
}

// allOutputs is every token of r, whose logits go into AllLogits.
func (r BatchRow) allOutputs() ([]int, []float32) {
	return r.Tokens, r.AllLogits
}

// head runs the final norm and the output head, each token with its row's
// adapter, over the tokens that out picks from each row (the row's last
// ones), writing their logits into the [len(tokens), VocabSize] slice out
// returns; a row whose slice is nil is skipped.
func (b *Batch) head(rows []BatchRow, out func(BatchRow) ([]int, []float32)) error {
	c := &b.w.Config
	d, vocab := c.Dim, c.VocabSize
	m := 0
	for _, r := range rows {
		if toks, y := out(r); y != nil {
			m += len(toks)
		}
	}
	if m == 0 {
		return nil
	}
	b.last = grow(b.last, m*d)
	want := b.want[:0]
	t, k := 0, 0
	for _, r := range rows {
		t += len(r.Tokens)
		if toks, y := out(r); y != nil {
			copy(b.last[k*d:], b.x[(t-len(toks))*d:t*d])
			k += len(toks)
			want = append(want, BatchRow{Tokens: toks, Adapter: r.Adapter, Logits: y})
		}
	}
	b.want = want
	last := b.last[:m*d]
	kernels.RMSNorm(last, last, b.w.Norm, c.NormEps)
	if err := b.prepare(want, last, m, d, fused{lin: b.w.Output}); err != nil {
		return err
	}
	if m >= panelMinTokens {
		// The panel kernel writes each token's logits where its row wants
		// them, sparing a [m, VocabSize] matrix and its copy.
		ys := b.wantLogits[:0]
		for _, r := range want {
			for t := range r.Tokens {
				ys = append(ys, r.Logits[t*vocab:(t+1)*vocab])
			}
		}
		b.wantLogits = ys
		return b.linearRows(want, ys, last, fused{lin: b.w.Output})
	}
	b.logits = grow(b.logits, m*vocab)
	if err := b.linear(want, last, fused{b.w.Output, b.logits}); err != nil {
		return err
	}
	k = 0
	for _, r := range want {
		k += copy(r.Logits, b.logits[k*vocab:(k+len(r.Tokens))*vocab]) / vocab
	}
	return nil
}

// prepare readies x [n, width], the input of lins, for linear: it finds
// the rows' adapter terms at lins (plan), then packs x for the panel
// kernel, split by columns over the team, and in the same run computes
// the terms' shrinks, split by tokens. Fewer than panelMinTokens rows are
// not packed, and their shrinks run on the calling goroutine.
func (b *Batch) prepare(rows []BatchRow, x []float32, n, width int, lins ...fused) error {
	if err := b.plan(rows, x, lins...); err != nil {
		return err
	}
	if n < panelMinTokens {
		b.lr.shrink(0, n)
		b.lr.shrunk = true
		return nil
	}
	b.panels = grow(b.panels, kernels.PanelsLen(n, width))
	j := b.job
	*j = job{kind: jobPack, n: n, width: width, x: x[:n*width], panels: b.panels, lr: b.lr}
	parts := len(b.team.ws)
	switch {
	case len(b.lr.terms) > parts:
		// Many adapters' shrinks, read from memory: claimed parts let a
		// core that another process slows down take fewer.
		parts *= partsPerWorker
	case n*width < batchMinWeights/8 && len(b.lr.terms) == 0:
		parts = 1
	}
	_ = b.team.run(j, parts) // packing and shrinking return no error
	b.lr.shrunk = true
	return nil
}

// plan finds the adapter terms of rows at lins, whose input is x, for the
// product linear runs next: the low-rank terms of LowRankAdapters, which
// the product's run expands (after a shrink that prepare runs, or linear
// when prepare did not), and whether other adapters' AddDelta must run
// after it.
func (b *Batch) plan(rows []BatchRow, x []float32, lins ...fused) error {
	p := b.lr
	p.reset()
	p.x = x
	t := 0
	for i := 0; i < len(rows); {
		a := rows[i].Adapter
		lo := t
		for ; i < len(rows) && rows[i].Adapter == a; i++ {
			t += len(rows[i].Tokens)
		}
		if a == nil {
			continue
		}
		la, ok := a.(LowRankAdapter)
		if !ok {
			p.other = true
			continue
		}
		for k, f := range lins {
			lr, err := la.LowRank(f.lin)
			if err != nil {
				return fmt.Errorf("infer: adapter at %s: %w", f.lin.Name, err)
			}
			if lr.R == 0 {
				continue
			}
			if err := lr.check(f.lin); err != nil {
				return fmt.Errorf("infer: adapter at %s: %w", f.lin.Name, err)
			}
			p.terms = append(p.terms, lrTerm{lin: k, lo: lo, hi: t, in: f.lin.In, t: lr, off: p.size})
			p.size += (t - lo) * lr.R
		}
	}
	p.s = grow(p.s, p.size)
	return nil
}

// check reports a term whose matrices do not have the shapes of lin.
func (lr *LowRank) check(lin *model.Linear) error {
	nA, nB := lr.R*lin.In, lr.R*lin.Out
	if lr.A != nil && len(lr.A) == nA && len(lr.BT) == nB || lr.A == nil && len(lr.A16) == nA && len(lr.BT16) == nB {
		return nil
	}
	return fmt.Errorf("low-rank term of rank %d does not fit the layer [%d %d]", lr.R, lin.Out, lin.In)
}

// fused is one linear layer of a product and its output y [tokens, Out].
type fused struct {
	lin *model.Linear
	y   []float32
}

// maxFused is the most linears one product runs together (Q, K and V).
const maxFused = 3

// panelPartUnits is the fewest units of partAlign weight rows a part of a
// panel product takes beyond one part per goroutine. Besides the panel
// kernel, a part makes calls per token over its columns (adapter expands,
// gating, the residual add): 32 tokens of a few hundred columns each cost
// about as much to call as to compute, so the block linears of the
// stories15M shape run one part per goroutine (the gate and up projections,
// 1536 rows, took 4 parts at 8 units, and a 32-row step 2% longer).
const panelPartUnits = 16

// linear computes y = x·Wᵀ for each of lins (which share x, so the same In)
// over the tokens of all rows at once, then adds each adapter's terms to its
// group: the tokens of adjacent rows sharing an Adapter. x must be what
// prepare prepared last (plan, when swiGLUPack packed it). The linears run
// as one product, split by weight rows over the team (the rows of all of
// them, one after the other), so that Q, K and V, or the gate and up
// projections, take one run of the team instead of one each; from
// panelMinTokens tokens on, each weight is read (and, quantized, expanded)
// once for the whole step. A LowRankAdapter's expand is added in the same
// run, each part on its own columns; only the terms of other adapters take
// one more run (AddDelta), split by tokens, each part cutting the groups it
// covers and applying a group's terms one linear after the other.
func (b *Batch) linear(rows []BatchRow, x []float32, lins ...fused) error {
	return b.linearRows(rows, nil, x, lins...)
}

// linearRows is linear writing, if ys is not nil (one linear; only with
// panels: panelMinTokens tokens or more), the row of each token into
// ys[token] instead of y.
func (b *Batch) linearRows(rows []BatchRow, ys [][]float32, x []float32, lins ...fused) error {
	return b.product(rows, ys, x, false, nil, nil, lins...)
}

// shrink computes the shrinks of b.lr that no run has computed (the down
// projection's: its input is packed as it is gated, by columns), in a run
// of its own split by tokens; on the calling goroutine for a few adapters
// over fewer than panelMinTokens tokens. A 32-row step's shrinks of one
// adapter at the down projection take about 10 µs, which the helpers
// would spend waiting.
func (b *Batch) shrink(n int) {
	lr := b.lr
	lr.shrunk = true
	workers := len(b.team.ws)
	if len(lr.terms) <= workers && n < panelMinTokens || workers == 1 {
		lr.shrink(0, n)
		return
	}
	parts := workers
	if len(lr.terms) > workers {
		// Read from memory: claimed parts let a core that another process
		// slows down take fewer.
		parts *= partsPerWorker
	}
	*b.job = job{kind: jobShrink, n: n, lr: lr}
	_ = b.team.run(b.job, min(n, parts)) // shrinks return no error
}

// linearAdd is linear of the one linear f followed by the residual
// connection, resid += f.y. Without AddDelta adapters in the rows, each
// part of the product's run adds the columns it has computed (elementwise:
// the split does not change a bit), sparing the calling goroutine a pass
// over the step's rows.
func (b *Batch) linearAdd(rows []BatchRow, x, resid []float32, f fused) error {
	if b.lr.other {
		if err := b.linear(rows, x, f); err != nil {
			return err
		}
		kernels.Add(resid, f.y)
		return nil
	}
	return b.product(rows, nil, x, false, nil, resid, f)
}

// linearGated is linear over the gate and up projections (lins, of the
// same Out) that also gates: gate = silu(gate) ⊙ up, and packs the result
// into gated if not nil, each part on the columns it has computed of both.
// The rows' adapters are all LowRankAdapters.
func (b *Batch) linearGated(rows []BatchRow, x, gated []float32, lins ...fused) error {
	return b.product(rows, nil, x, true, gated, nil, lins...)
}

// product is linearRows, or linearGated if gate, or linearAdd if resid is
// not nil.
func (b *Batch) product(rows []BatchRow, ys [][]float32, x []float32, gate bool, gated, resid []float32, lins ...fused) error {
	n := 0
	for _, r := range rows {
		n += len(r.Tokens)
	}
	lr := b.lr
	if len(lr.terms) > 0 && !lr.shrunk {
		b.shrink(n) // before the product's job takes b.job
	}
	j := b.job
	*j = job{kind: jobProduct, ys: ys, x: x[:n*lins[0].lin.In], n: n, rows: rows, nlin: len(lins), gate: gate, gated: gated}
	if resid != nil {
		j.resid = resid[:n*lins[0].lin.Out]
	}
	if n >= panelMinTokens {
		j.panels = b.panels
	}
	outs, split := 0, true
	for i, f := range lins {
		j.lins[i] = fused{f.lin, f.y[:min(len(f.y), n*f.lin.Out)]}
		outs += f.lin.Out
		split = split && canSplit(f.lin)
	}
	parts := len(b.team.ws)
	if j.panels != nil {
		// At least panelPartUnits units of partAlign weight rows a part:
		// more parts than goroutines only for the head.
		parts = max(parts, min(partsPerWorker*parts, outs/(panelPartUnits*partAlign)))
	}
	if j.panels == nil && !split || outs*lins[0].lin.In*max(n, 4) < batchMinWeights {
		parts = 1
	}
	if len(lr.terms) > 0 {
		j.lr = lr
	}
	if err := b.team.run(j, parts); err != nil {
		return err
	}
	if !lr.other {
		return nil
	}
	groups := 0 // groups of rows with an adapter run by AddDelta
	for i, r := range rows {
		if _, ok := r.Adapter.(LowRankAdapter); !ok && r.Adapter != nil && (i == 0 || rows[i-1].Adapter != r.Adapter) {
			groups++
		}
	}
	// One part per goroutine for few groups (a group cut in parts reads its
	// matrices once per part), up to partsPerWorker for many: their terms
	// are read from memory, and claimed parts let a core that another
	// process slows down take fewer.
	workers := len(b.team.ws)
	j.kind = jobAdapter
	return b.team.run(j, min(n, workers*min(partsPerWorker, max(1, groups/workers))))
}

// attention runs, for each token of the step in one run of the team, what
// follows the Q, K and V products: the q/k norms and the rotary embedding of
// its query and key, the store of its key and value in its sequence's cache
// of layer l, then causal grouped-query attention against that cache
// (kernels.AttendCachedFast: the Generator's kernel with the additions in
// another order). It is split by rows, each part taking a row's tokens in
// order, so a token finds the keys of the row's earlier tokens stored. From
// panelMinTokens tokens on, each token's output is also packed for the
// output projection and its adapter shrinks computed (b.lr, planned for
// it), so that the projection needs no run of the team to prepare it.
func (b *Batch) attention(rows []BatchRow, l, n int) error {
	c := &b.w.Config
	layer := &b.w.Layers[l]
	j := b.job
	*j = job{kind: jobAttend, n: n, rows: rows, layer: l, q: b.q, attn: b.attn, k: b.k, v: b.v,
		cos: b.cos, sin: b.sin, half: len(b.invFreq), eps: c.NormEps,
		qDim: b.qDim, kvDim: b.kvDim, heads: c.Heads, hd: c.HeadDim, group: c.Heads / c.KVHeads, window: c.SlidingWindow}
	if c.QKNorm {
		j.qNorm, j.kNorm = layer.QNorm, layer.KNorm
	}
	if n >= panelMinTokens {
		b.panels = grow(b.panels, kernels.PanelsLen(n, b.qDim))
		if rest := n % kernels.PanelWidth; rest != 0 {
			// The rows past the last token, which no token's part writes.
			clear(b.panels[(n-rest)*b.qDim:])
		}
		j.panels, j.lr = b.panels, b.lr
	}
	parts := min(len(rows), partsPerWorker*len(b.team.ws))
	if n*b.qDim < batchMinWeights/8 {
		parts = 1
	}
	err := b.team.run(j, parts)
	if j.panels != nil {
		b.lr.shrunk = true
	}
	return err
}

// mlpIn runs the gate and up projections and gates the MLP, gate =
// silu(gate) ⊙ up, packing the result for the down projection. When every
// adapter of the rows is a LowRankAdapter (or none), it is one run of the
// team: the product is split by units of columns of both projections, so
// that a part gates (elementwise: the split does not change a bit) and
// packs the columns it has just computed, terms added. Otherwise the
// gating waits for the AddDelta terms, in a run of its own (swiGLUPack).
func (b *Batch) mlpIn(rows []BatchRow, xn []float32, n int, gateUp [2]fused) error {
	if b.lr.other {
		if err := b.linear(rows, xn, gateUp[:]...); err != nil {
			return err
		}
		b.swiGLUPack(n, gateUp[0].lin.Out)
		return nil
	}
	var out []float32
	if n >= panelMinTokens {
		b.panels2 = grow(b.panels2, kernels.PanelsLen(n, gateUp[0].lin.Out))
		out = b.panels2
	}
	if err := b.linearGated(rows, xn, out, gateUp[:]...); err != nil {
		return err
	}
	b.panels, b.panels2 = b.panels2, b.panels
	return nil
}

// swiGLUPack gates the MLP, gate = silu(gate) ⊙ up over n tokens, and
// packs the result for the down projection (as pack) in the same run of the
// team: split by columns, each part packs the columns it has just gated
// (elementwise: the split does not change a bit). Below panelMinTokens
// tokens nothing is packed and the split is by tokens.
func (b *Batch) swiGLUPack(n, width int) {
	j := b.job
	*j = job{kind: jobSwiGLU, n: n, width: width, y: b.gate[:n*width], x: b.up[:n*width]}
	if n >= panelMinTokens {
		b.panels = grow(b.panels, kernels.PanelsLen(n, width))
		j.kind, j.panels = jobSwiGLUPack, b.panels
	}
	parts := len(b.team.ws)
	if n*width < batchMinWeights/8 {
		parts = 1
	}
	if j.kind == jobSwiGLU {
		parts = min(n, parts)
	}
	_ = b.team.run(j, parts) // the kernels return no error
}
