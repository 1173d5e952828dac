package model

import (
	"errors"
	"fmt"
	"math"
	"sync"
)

// Batch runs many sequences forward together, each with its own KV cache and
// its own adapter: the step of continuous batching. In a step every frozen
// linear layer is multiplied once over the tokens of all rows (for NF4, the
// weight is expanded once for the whole batch), while each adapter's
// low-rank term is applied to its group of rows only: adjacent rows with the
// same Delta form one group, so callers order rows by adapter. Attention is
// per row, against the row's own cache.
//
// A Batch is not safe for concurrent use; its sequences belong to it.
type Batch struct {
	w       *Weights
	kernels map[*Linear]*frozenKernel
	scratch sync.Pool
	qDim    int
	kvDim   int
	invFreq []float64

	// Scratch grown to the largest step: [tokens, width].
	x, xn, q, k, v, attn, proj, gate, up []float32
	cos, sin                             []float32
	scores                               []float32
	last                                 []float32 // final-norm rows of the rows that want logits
	logits                               []float32
}

// BatchRow is one sequence's part of a step: a chunk of its prompt or its
// last generated token.
type BatchRow struct {
	Seq    *Sequence
	Tokens []int
	// Delta adds the row's adapter term; nil for the base model.
	Delta LinearDelta
	// Logits, if not nil, receives the logits [VocabSize] predicting the
	// token after the row's last one.
	Logits []float32
}

// Sequence is the KV cache of one sequence of a Batch.
type Sequence struct {
	pos, maxLen  int
	keys, values [][]float32 // per layer, [capacity, kvDim]
}

// Pos returns the number of positions filled.
func (s *Sequence) Pos() int { return s.pos }

// MaxLen returns the number of positions the cache can hold.
func (s *Sequence) MaxLen() int { return s.maxLen }

// NewBatch checks w with Validate and returns a Batch running it.
func NewBatch(w *Weights) (*Batch, error) {
	if w == nil {
		return nil, errors.New("model: NewBatch: weights are nil")
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	c := w.Config
	b := &Batch{
		w:       w,
		kernels: make(map[*Linear]*frozenKernel),
		qDim:    c.Heads * c.HeadDim,
		kvDim:   c.KVHeads * c.HeadDim,
		invFreq: make([]float64, c.HeadDim/2),
	}
	for i := range b.invFreq {
		b.invFreq[i] = math.Pow(c.RopeTheta, -2*float64(i)/float64(c.HeadDim))
	}
	for _, lin := range append(w.Linears(), w.Output) {
		b.kernels[lin] = newFrozenKernel(lin, &b.scratch)
	}
	return b, nil
}

// Weights returns the model the Batch runs.
func (b *Batch) Weights() *Weights { return b.w }

// NewSequence returns an empty KV cache of maxLen positions (at most
// Config.MaxSeqLen). Its memory is allocated now, so a budget of positions
// bounds the memory of the caches.
func (b *Batch) NewSequence(maxLen int) (*Sequence, error) {
	if maxLen <= 0 || maxLen > b.w.Config.MaxSeqLen {
		return nil, fmt.Errorf("model: NewSequence: length %d must be in [1, %d]", maxLen, b.w.Config.MaxSeqLen)
	}
	s := &Sequence{maxLen: maxLen, keys: make([][]float32, len(b.w.Layers)), values: make([][]float32, len(b.w.Layers))}
	for l := range s.keys {
		s.keys[l] = make([]float32, maxLen*b.kvDim)
		s.values[l] = make([]float32, maxLen*b.kvDim)
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
			return fmt.Errorf("model: Batch.Step: row %d has no sequence or no tokens", i)
		}
		if r.Seq.pos+len(r.Tokens) > r.Seq.maxLen {
			return fmt.Errorf("model: Batch.Step: row %d: %w: %d positions used + %d tokens > %d", i, ErrContextFull, r.Seq.pos, len(r.Tokens), r.Seq.maxLen)
		}
		if r.Logits != nil && len(r.Logits) != c.VocabSize {
			return fmt.Errorf("model: Batch.Step: row %d: logits of length %d, want %d", i, len(r.Logits), c.VocabSize)
		}
		for j, t := range r.Tokens {
			if t < 0 || t >= c.VocabSize {
				return fmt.Errorf("model: Batch.Step: row %d: token %d (index %d) is outside the vocabulary [0, %d)", i, t, j, c.VocabSize)
			}
		}
		for _, o := range rows[:i] {
			if o.Seq == r.Seq {
				return fmt.Errorf("model: Batch.Step: row %d names the sequence of an earlier row", i)
			}
		}
		n += len(r.Tokens)
	}
	if n == 0 {
		return nil
	}
	d, half := c.Dim, c.HeadDim/2
	b.x, b.xn = grow(b.x, n*d), grow(b.xn, n*d)
	b.q, b.attn = grow(b.q, n*b.qDim), grow(b.attn, n*b.qDim)
	b.k, b.v = grow(b.k, n*b.kvDim), grow(b.v, n*b.kvDim)
	b.proj = grow(b.proj, n*d)
	b.gate, b.up = grow(b.gate, n*c.HiddenDim), grow(b.up, n*c.HiddenDim)
	b.cos, b.sin = grow(b.cos, n*half), grow(b.sin, n*half)
	t := 0
	for _, r := range rows {
		b.scores = grow(b.scores, r.Seq.pos+len(r.Tokens))
		for j, tok := range r.Tokens {
			copy(b.x[t*d:(t+1)*d], b.w.Embedding[tok*d:(tok+1)*d])
			p := float64(r.Seq.pos + j)
			for i, f := range b.invFreq {
				s, co := math.Sincos(p * f)
				b.cos[t*half+i], b.sin[t*half+i] = float32(co), float32(s)
			}
			t++
		}
	}
	x, xn, q, k, v := b.x, b.xn, b.q, b.k, b.v
	eps := c.NormEps
	for l := range b.w.Layers {
		layer := &b.w.Layers[l]
		rmsNormRows(xn, x, layer.AttnNorm, eps)
		if err := b.linear(rows, layer.Q, q, xn); err != nil {
			return fmt.Errorf("model: layer %d: %w", l, err)
		}
		if err := b.linear(rows, layer.K, k, xn); err != nil {
			return fmt.Errorf("model: layer %d: %w", l, err)
		}
		if err := b.linear(rows, layer.V, v, xn); err != nil {
			return fmt.Errorf("model: layer %d: %w", l, err)
		}
		b.rope(q, n, c.Heads)
		b.rope(k, n, c.KVHeads)
		b.attention(rows, l)
		if err := b.linear(rows, layer.O, b.proj, b.attn); err != nil {
			return fmt.Errorf("model: layer %d: %w", l, err)
		}
		addInPlace(x, b.proj)
		rmsNormRows(xn, x, layer.MLPNorm, eps)
		if err := b.linear(rows, layer.Gate, b.gate, xn); err != nil {
			return fmt.Errorf("model: layer %d: %w", l, err)
		}
		if err := b.linear(rows, layer.Up, b.up, xn); err != nil {
			return fmt.Errorf("model: layer %d: %w", l, err)
		}
		for i, a := range b.gate {
			b.gate[i] = a / (1 + float32(math.Exp(-float64(a)))) * b.up[i]
		}
		if err := b.linear(rows, layer.Down, b.proj, b.gate); err != nil {
			return fmt.Errorf("model: layer %d: %w", l, err)
		}
		addInPlace(x, b.proj)
	}
	for _, r := range rows {
		r.Seq.pos += len(r.Tokens)
	}
	return b.outputs(rows)
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
	want := make([]BatchRow, 0, m)
	t := 0
	for _, r := range rows {
		t += len(r.Tokens)
		if r.Logits != nil {
			copy(b.last[len(want)*d:], b.x[(t-1)*d:t*d])
			want = append(want, BatchRow{Tokens: r.Tokens[len(r.Tokens)-1:], Delta: r.Delta, Logits: r.Logits})
		}
	}
	last := b.last[:m*d]
	rmsNormRows(last, last, b.w.Norm, c.NormEps)
	b.logits = grow(b.logits, m*c.VocabSize)
	if err := b.linear(want, b.w.Output, b.logits, last); err != nil {
		return err
	}
	for i, r := range want {
		copy(r.Logits, b.logits[i*c.VocabSize:(i+1)*c.VocabSize])
	}
	return nil
}

// linear computes y = x·Wᵀ over the tokens of all rows at once, then adds
// each adapter's term to its group: the tokens of adjacent rows sharing a
// Delta.
func (b *Batch) linear(rows []BatchRow, lin *Linear, y, x []float32) error {
	n := 0
	for _, r := range rows {
		n += len(r.Tokens)
	}
	y, x = y[:n*lin.Out], x[:n*lin.In]
	if lin.Quantized != nil {
		if err := b.kernels[lin].mulT(y, x, n); err != nil {
			return err
		}
	} else {
		denseMulT(y, x, lin.Dense, n, lin.In, lin.Out)
	}
	lo := 0
	for i := 0; i < len(rows); {
		delta := rows[i].Delta
		hi := lo
		j := i
		for ; j < len(rows) && rows[j].Delta == delta; j++ {
			hi += len(rows[j].Tokens)
		}
		if delta != nil {
			if err := delta.AddDelta(lin, y[lo*lin.Out:hi*lin.Out], x[lo*lin.In:hi*lin.In], hi-lo); err != nil {
				return fmt.Errorf("model: adapter at %s: %w", lin.Name, err)
			}
		}
		i, lo = j, hi
	}
	return nil
}

// rope rotates the heads of n token rows by their own positions (the tables
// filled by Step), in the Hugging Face layout.
func (b *Batch) rope(v []float32, n, heads int) {
	hd := b.w.Config.HeadDim
	half := hd / 2
	for i := range n {
		cos, sin := b.cos[i*half:(i+1)*half], b.sin[i*half:(i+1)*half]
		row := v[i*heads*hd : (i+1)*heads*hd]
		for h := range heads {
			lo, hi := row[h*hd:h*hd+half], row[h*hd+half:(h+1)*hd]
			for j, co := range cos {
				a, bb, s := lo[j], hi[j], sin[j]
				lo[j] = a*co - bb*s
				hi[j] = bb*co + a*s
			}
		}
	}
}

// attention stores each token's key and value in its sequence's cache of
// layer l, then computes causal grouped-query attention per token against
// that cache, as Generator.attention does for one sequence.
func (b *Batch) attention(rows []BatchRow, l int) {
	c := &b.w.Config
	hd := c.HeadDim
	group := c.Heads / c.KVHeads
	scale := float32(1 / math.Sqrt(float64(hd)))
	t := 0
	for _, r := range rows {
		keys, values := r.Seq.keys[l], r.Seq.values[l]
		p0 := r.Seq.pos
		nt := len(r.Tokens)
		copy(keys[p0*b.kvDim:(p0+nt)*b.kvDim], b.k[t*b.kvDim:(t+nt)*b.kvDim])
		copy(values[p0*b.kvDim:(p0+nt)*b.kvDim], b.v[t*b.kvDim:(t+nt)*b.kvDim])
		for i := range nt {
			scores := b.scores[:p0+i+1]
			qi := b.q[(t+i)*b.qDim : (t+i+1)*b.qDim]
			out := b.attn[(t+i)*b.qDim : (t+i+1)*b.qDim]
			for h := range c.Heads {
				qh := qi[h*hd : (h+1)*hd]
				off := (h / group) * hd
				m := float32(math.Inf(-1))
				for s := range scores {
					base := s*b.kvDim + off
					sc := dotF32(qh, keys[base:base+hd]) * scale
					scores[s] = sc
					m = max(m, sc)
				}
				var sum float32
				for s, sc := range scores {
					e := expF32(sc - m)
					scores[s] = e
					sum += e
				}
				inv := 1 / sum
				oh := out[h*hd : (h+1)*hd]
				clear(oh)
				for s, e := range scores {
					base := s*b.kvDim + off
					axpyF32(e*inv, values[base:base+hd], oh)
				}
			}
		}
		t += nt
	}
}
