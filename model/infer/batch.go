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
// Products are split by weight rows, adapter terms and attention (each
// token against its own sequence's cache) by tokens, over GOMAXPROCS
// goroutines of the Batch's own. It runs every architecture the Generator
// runs (biases, q/k norms, partial rotary, rope scaling, sliding windows)
// with the same kernels, and a step does not allocate once its scratch has
// grown.
//
// A Batch is not safe for concurrent use; its sequences belong to it.
type Batch struct {
	w       *model.Weights
	qDim    int
	kvDim   int
	maxLen  int       // positions a sequence can hold
	invFreq []float64 // RoPE frequencies (model.Weights.RopeInvFreq), [Rotary/2]
	angle   float32   // RoPE attention scaling (model.Config.RopeScaling.AngleScale)

	// Scratch grown to the largest step: [tokens, width].
	x, xn, q, k, v, attn, proj, gate, up []float32
	cos, sin                             []float32
	last                                 []float32 // final-norm rows of the rows that want logits
	logits                               []float32
	panels                               []float32 // the input of the linears being run, packed (kernels.PackPanels)
	want                                 []BatchRow
	wantLogits                           [][]float32 // the Logits of want, which the head writes into directly
	tokSeq                               []*Sequence
	tokPos                               []int

	team *batchTeam
	job  *job // its own allocation: the team's goroutines must not keep the Batch alive
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
	return b, nil
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
	d, half := c.Dim, len(b.invFreq)
	b.x, b.xn = grow(b.x, n*d), grow(b.xn, n*d)
	b.q, b.attn = grow(b.q, n*b.qDim), grow(b.attn, n*b.qDim)
	b.k, b.v = grow(b.k, n*b.kvDim), grow(b.v, n*b.kvDim)
	b.proj = grow(b.proj, n*d)
	b.gate, b.up = grow(b.gate, n*c.HiddenDim), grow(b.up, n*c.HiddenDim)
	b.cos, b.sin = grow(b.cos, n*half), grow(b.sin, n*half)
	b.tokSeq, b.tokPos = b.tokSeq[:0], b.tokPos[:0]
	t := 0
	for _, r := range rows {
		for j, tok := range r.Tokens {
			copy(b.x[t*d:(t+1)*d], b.w.Embedding[tok*d:(tok+1)*d])
			kernels.RopeAnglesScaled(b.cos[t*half:(t+1)*half], b.sin[t*half:(t+1)*half], r.Seq.pos+j, b.invFreq, b.angle)
			b.tokSeq, b.tokPos = append(b.tokSeq, r.Seq), append(b.tokPos, r.Seq.pos+j)
			t++
		}
	}
	x, xn, q, k, v := b.x, b.xn, b.q, b.k, b.v
	eps := c.NormEps
	for l := range b.w.Layers {
		layer := &b.w.Layers[l]
		kernels.RMSNorm(xn, x, layer.AttnNorm, eps)
		b.pack(xn, n, d)
		if err := b.linear(rows, layer.Q, q, xn); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		if err := b.linear(rows, layer.K, k, xn); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		if err := b.linear(rows, layer.V, v, xn); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		if c.QKNorm {
			kernels.RMSNorm(q[:n*b.qDim], q[:n*b.qDim], layer.QNorm, eps)
			kernels.RMSNorm(k[:n*b.kvDim], k[:n*b.kvDim], layer.KNorm, eps)
		}
		ropeRows(q, b.cos, b.sin, half, n, c.Heads, c.HeadDim)
		ropeRows(k, b.cos, b.sin, half, n, c.KVHeads, c.HeadDim)
		if err := b.attention(rows, l, n); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		b.pack(b.attn, n, b.qDim)
		if err := b.linear(rows, layer.O, b.proj, b.attn); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		kernels.Add(x, b.proj)
		kernels.RMSNorm(xn, x, layer.MLPNorm, eps)
		b.pack(xn, n, d)
		if err := b.linear(rows, layer.Gate, b.gate, xn); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		if err := b.linear(rows, layer.Up, b.up, xn); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		b.swiGLU(n, c.HiddenDim)
		b.pack(b.gate, n, c.HiddenDim)
		if err := b.linear(rows, layer.Down, b.proj, b.gate); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		kernels.Add(x, b.proj)
	}
	for _, r := range rows {
		r.Seq.pos += len(r.Tokens)
	}
	err := b.outputs(rows)
	// The scratch does not keep sequences and adapters of this step alive.
	clear(b.tokSeq)
	clear(b.want)
	clear(b.wantLogits)
	*b.job = job{}
	return err
}

// outputs computes the logits of the rows that want them, the output head
// run once over their last tokens.
func (b *Batch) outputs(rows []BatchRow) error {
	c := &b.w.Config
	d := c.Dim
	m := 0
	for _, r := range rows {
		if r.Logits != nil {
			m++
		}
	}
	if m == 0 {
		return nil
	}
	b.last = grow(b.last, m*d)
	want := b.want[:0]
	t := 0
	for _, r := range rows {
		t += len(r.Tokens)
		if r.Logits != nil {
			copy(b.last[len(want)*d:], b.x[(t-1)*d:t*d])
			want = append(want, BatchRow{Tokens: r.Tokens[len(r.Tokens)-1:], Adapter: r.Adapter, Logits: r.Logits})
		}
	}
	b.want = want
	last := b.last[:m*d]
	kernels.RMSNorm(last, last, b.w.Norm, c.NormEps)
	b.pack(last, m, d)
	if m >= panelMinTokens {
		// The panel kernel writes each row's logits where it wants them,
		// sparing a [m, VocabSize] matrix and its copy.
		ys := b.wantLogits[:0]
		for _, r := range want {
			ys = append(ys, r.Logits)
		}
		b.wantLogits = ys
		return b.linearRows(want, b.w.Output, nil, ys, last)
	}
	b.logits = grow(b.logits, m*c.VocabSize)
	if err := b.linear(want, b.w.Output, b.logits, last); err != nil {
		return err
	}
	for i, r := range want {
		copy(r.Logits, b.logits[i*c.VocabSize:(i+1)*c.VocabSize])
	}
	return nil
}

// pack packs the n rows of x [n, width], the input of the linears that
// follow, for the panel kernel, split by columns over the team; fewer than
// panelMinTokens rows are not packed.
func (b *Batch) pack(x []float32, n, width int) {
	if n < panelMinTokens {
		return
	}
	b.panels = grow(b.panels, kernels.PanelsLen(n, width))
	j := b.job
	*j = job{kind: jobPack, n: n, width: width, x: x[:n*width], panels: b.panels}
	parts := len(b.team.ws)
	if n*width < batchMinWeights/8 {
		parts = 1
	}
	_ = b.team.run(j, parts) // packing returns no error
}

// linear computes y = x·Wᵀ over the tokens of all rows at once, then adds
// each adapter's term to its group: the tokens of adjacent rows sharing an
// Adapter. x must be what pack packed last. The base product is split by
// weight rows over the team; from panelMinTokens tokens on, each weight is
// read (and, quantized, expanded) once for the whole step. The adapter terms
// are split by tokens, each part cutting the groups it covers.
func (b *Batch) linear(rows []BatchRow, lin *model.Linear, y, x []float32) error {
	return b.linearRows(rows, lin, y, nil, x)
}

// linearRows is linear writing y, or if ys is not nil (only with panels:
// panelMinTokens tokens or more) the row of each token into ys[token].
func (b *Batch) linearRows(rows []BatchRow, lin *model.Linear, y []float32, ys [][]float32, x []float32) error {
	n := 0
	for _, r := range rows {
		n += len(r.Tokens)
	}
	j := b.job
	*j = job{kind: jobProduct, lin: lin, y: y[:min(len(y), n*lin.Out)], ys: ys, x: x[:n*lin.In], n: n, rows: rows}
	if n >= panelMinTokens {
		j.panels = b.panels
	}
	parts := len(b.team.ws)
	if j.panels != nil {
		// At least 8 units of partAlign weight rows a part: the head.
		parts = max(parts, min(partsPerWorker*parts, lin.Out/(8*partAlign)))
	}
	if j.panels == nil && !canSplit(lin) || lin.Out*lin.In*max(n, 4) < batchMinWeights {
		parts = 1
	}
	if err := b.team.run(j, parts); err != nil {
		return err
	}
	adapted := false
	for _, r := range rows {
		adapted = adapted || r.Adapter != nil
	}
	if !adapted {
		return nil
	}
	j.kind = jobAdapter
	return b.team.run(j, min(n, len(b.team.ws)))
}

// attention stores each token's key and value in its sequence's cache of
// layer l, then computes causal grouped-query attention per token against
// that cache (kernels.AttendCached, as the Generator does), the tokens split
// over the team.
func (b *Batch) attention(rows []BatchRow, l, n int) error {
	c := &b.w.Config
	t := 0
	for _, r := range rows {
		keys, values := r.Seq.keys[l], r.Seq.values[l]
		p0 := r.Seq.pos
		nt := len(r.Tokens)
		copy(keys[p0*b.kvDim:(p0+nt)*b.kvDim], b.k[t*b.kvDim:(t+nt)*b.kvDim])
		copy(values[p0*b.kvDim:(p0+nt)*b.kvDim], b.v[t*b.kvDim:(t+nt)*b.kvDim])
		t += nt
	}
	j := b.job
	*j = job{kind: jobAttend, n: n, layer: l, q: b.q, attn: b.attn, tokSeq: b.tokSeq, tokPos: b.tokPos,
		qDim: b.qDim, kvDim: b.kvDim, heads: c.Heads, hd: c.HeadDim, group: c.Heads / c.KVHeads, window: c.SlidingWindow}
	return b.team.run(j, min(n, partsPerWorker*len(b.team.ws)))
}

// swiGLU gates the MLP, gate = silu(gate) ⊙ up over n tokens, split by
// tokens over the team (elementwise: the split does not change a bit).
func (b *Batch) swiGLU(n, width int) {
	j := b.job
	*j = job{kind: jobSwiGLU, n: n, width: width, y: b.gate[:n*width], x: b.up[:n*width]}
	parts := len(b.team.ws)
	if n*width < batchMinWeights/8 {
		parts = 1
	}
	_ = b.team.run(j, min(n, parts)) // the kernel returns no error
}
