package infer

import (
	"fmt"

	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/model"
)

// panelMinTokens is the fewest tokens a Batch runs through the panel kernel
// (kernels.MulTPanels, every weight read once for 32 rows); fewer rows are
// matrix-vector products, one per row, as in the Generator's decode step.
// Where the two cost the same depends on the CPU's kernels.
var panelMinTokens = kernels.PanelMinRows()

// tileElems bounds the weights of a quantized linear a part expands at a
// time (96 KiB of float32, kept in L2 while the panels run over it). Each
// tile is a call of the panel kernel, whose results it transposes 16
// columns at a time: 64 KiB made tiles of 48 rows of 288 and 12 rows of
// 768 (no 16 columns to transpose, each result stored alone), and a
// 32-row step of the stories15M shape ran 1-2% slower than with 84 and 24.
const tileElems = 3 << 13

// partAlign is the multiple of weight rows a linear's parts start at: whole
// kernel tiles (6 rows) and whole 16-row units of nf4's row kernels.
const partAlign = 48

// batchTeam runs the parts of a Batch step on the calling goroutine and a
// team's helpers (team.go, shared with the Generator). Each goroutine has
// its own workspace. The helpers hold no reference to the Batch: the team's
// job function is cleared after each run, and the Batch's cleanup closes
// the team.
type batchTeam struct {
	team *team // nil with GOMAXPROCS 1
	// ws holds one workspace per goroutine of the team, made on its first
	// part after the team started or was trimmed.
	ws            []*workspace
	maxSeq, maxIn int  // what a workspace is sized for
	j             *job // the job being run, nil between runs
	parts         int
	runPart       func(worker, part int) error // t.part, made once
}

// workspace is one goroutine's scratch.
type workspace struct {
	tile   []float32 // a tile of expanded weights
	panel  []float32 // kernels.MulTPanels' scratch
	scores []float32 // attention scores of one token
}

// jobKind says what a job computes.
type jobKind int

const (
	jobProduct    jobKind = iota // y = x·Wᵀ, split by weight rows
	jobAdapter                   // the adapters' terms, split by tokens
	jobAttend                    // attention, split by tokens
	jobSwiGLU                    // y = silu(y) ⊙ x, rows of width, split by tokens
	jobPack                      // panels = x [n, width] packed, split by columns
	jobSwiGLUPack                // jobSwiGLU then jobPack of y, split by columns
	jobShrink                    // the adapter shrinks of lr, split by tokens
)

// job is the work of one parallel phase of a step. Its fields point into the
// Batch's buffers.
type job struct {
	kind      jobKind
	lins      [maxFused]fused // jobProduct, jobAdapter: the linears run together, lins[:nlin]
	nlin      int
	y, x      []float32
	ys        [][]float32 // if not nil, the rows of the one linear's y each in a buffer of its own (the head's Logits); panels only
	panels    []float32   // x packed by kernels.PackPanels, when n ≥ panelMinTokens
	n         int         // tokens
	rows      []BatchRow
	layer     int
	q, attn   []float32
	k, v      []float32 // attention: the step's keys and values, [n, kvDim]
	cos, sin  []float32 // attention: each token's rotary angles, [n, half]
	half      int
	qNorm     []float32 // attention: the q/k norms' weights, nil without
	kNorm     []float32
	eps       float64
	qDim      int
	kvDim     int
	heads, hd int
	group     int
	window    int       // sliding window (Mistral), 0 for none
	width     int       // jobSwiGLU, jobPack: the elements of a token's row
	lr        *lrPlan   // jobPack: the shrinks to compute; jobProduct: the expands to add
	gate      bool      // jobProduct of the gate and up projections: gate them too (Batch.linearGated)
	gated     []float32 // with gate, if not nil: where to pack the gated columns
	resid     []float32 // jobProduct of one linear, if not nil: add y to it (Batch.linearAdd)
}

// lrPlan is the low-rank adapter terms of one product of a step (the
// linears run together on the same input): for each group of rows sharing
// a LowRankAdapter and each linear where it has a term, the term and where
// its rows' shrinks go.
type lrPlan struct {
	terms  []lrTerm
	x      []float32 // the products' input [tokens, In]
	s      []float32 // the shrinks: term i's token t at terms[i].off + (t−lo)·R
	size   int       // elements of s in use
	shrunk bool      // s is computed
	other  bool      // rows with an adapter that is not a LowRankAdapter (AddDelta runs them)
}

// lrTerm is one group's term at one linear of the product.
type lrTerm struct {
	lin    int // index of the linear in the job's lins
	lo, hi int // the group's tokens
	in     int
	off    int
	t      LowRank
}

// reset empties the plan; it keeps no adapter's memory reachable.
func (p *lrPlan) reset() {
	clear(p.terms)
	p.terms, p.x, p.size, p.shrunk, p.other = p.terms[:0], nil, 0, false, false
}

// shrink computes the shrinks of tokens [lo, hi) of every term.
func (p *lrPlan) shrink(lo, hi int) {
	for i := range p.terms {
		tm := &p.terms[i]
		r, in := tm.t.R, tm.in
		if i+1 < len(p.terms) {
			p.terms[i+1].prefetchA(lo, hi)
		}
		for t := max(lo, tm.lo); t < min(hi, tm.hi); t++ {
			s, x := p.s[tm.off+(t-tm.lo)*r:][:r], p.x[t*in:(t+1)*in]
			if tm.t.A != nil {
				kernels.LowRankShrink(s, x, tm.t.A, r, in, tm.t.Scale)
			} else {
				kernels.LowRankShrinkF16(s, x, tm.t.A16, r, in, tm.t.Scale)
			}
		}
	}
}

// nextAt returns the index of the first term after term i at linear k of
// the product, −1 for none.
func (p *lrPlan) nextAt(i, k int) int {
	for n := i + 1; n < len(p.terms); n++ {
		if p.terms[n].lin == k {
			return n
		}
	}
	return -1
}

// prefetchA asks for the term's A if tokens [lo, hi) have some of its
// rows: with an adapter per row (a batch of mixed adapters), each term's
// matrices are read once a step, from memory, for one token's few
// multiply-adds, so the next term's arrive while this one's run.
func (tm *lrTerm) prefetchA(lo, hi int) {
	if max(lo, tm.lo) >= min(hi, tm.hi) {
		return
	}
	if tm.t.A != nil {
		kernels.Prefetch(tm.t.A)
	} else {
		kernels.Prefetch(tm.t.A16)
	}
}

// prefetchBT asks for columns [lo, hi) of the term's Bᵀ [R, out] (see
// prefetchA).
func (tm *lrTerm) prefetchBT(out, lo, hi int) {
	for k := range tm.t.R {
		if tm.t.BT != nil {
			kernels.Prefetch(tm.t.BT[k*out+lo : k*out+hi])
		} else {
			kernels.Prefetch(tm.t.BT16[k*out+lo : k*out+hi])
		}
	}
}

// expand adds the expands of linear k of the job to columns [lo, hi) of y
// (or of j.ys' rows) for every token of its terms.
func (j *job) expand(k int, y []float32, out, lo, hi int) {
	p := j.lr
	for i := range p.terms {
		tm := &p.terms[i]
		if tm.lin != k {
			continue
		}
		if n := p.nextAt(i, k); n >= 0 {
			p.terms[n].prefetchBT(out, lo, hi)
		}
		r := tm.t.R
		for t := tm.lo; t < tm.hi; t++ {
			s := p.s[tm.off+(t-tm.lo)*r:][:r]
			var row []float32
			if j.ys != nil {
				row = j.ys[t][lo:hi]
			} else {
				row = y[t*out+lo : t*out+hi]
			}
			if tm.t.BT != nil {
				kernels.LowRankExpandCols(row, s, tm.t.BT, r, out, lo, hi)
			} else {
				kernels.LowRankExpandColsF16(row, s, tm.t.BT16, r, out, lo, hi)
			}
		}
	}
}

// partsPerWorker is how many parts a large product or attention is cut
// into per goroutine of the team. Parts are claimed, so when a core is
// slowed down (another process on it) the others take more parts, instead of
// the step waiting for an even share on the slow one.
const partsPerWorker = 4

// batchMinWeights is the fewest multiply-adds (weights × tokens) a Batch
// product needs to be split over the team: below it, handing out the parts
// costs about what they save.
const batchMinWeights = 1 << 16

func newBatchTeam(owner *Batch, maxSeq, maxIn int) *batchTeam {
	t := &batchTeam{team: startTeam(owner), maxSeq: maxSeq, maxIn: maxIn}
	t.ws = make([]*workspace, t.team.size())
	t.runPart = t.part
	return t
}

// trim drops the workspaces (about 200 KB each on the stories15M shape),
// for an idle server; the next step makes them again. Not during a run.
func (t *batchTeam) trim() { clear(t.ws) }

// run splits j into parts, claimed by the team's goroutines as they come
// free, and waits for them.
func (t *batchTeam) run(j *job, parts int) error {
	parts = max(1, min(parts, maxChunks))
	if t.team == nil {
		parts = 1
	}
	t.j, t.parts = j, parts
	var err error
	if parts == 1 {
		err = t.part(0, 0)
	} else {
		err = t.team.run(parts, t.runPart)
	}
	t.j = nil
	return err
}

// part runs part p of the current job on goroutine worker.
func (t *batchTeam) part(worker, p int) error {
	ws := t.ws[worker] // only this goroutine uses it during the run
	if ws == nil {
		ws = &workspace{
			tile:   make([]float32, max(tileElems, partAlign*t.maxIn)),
			panel:  make([]float32, kernels.MulTPanelsScratch),
			scores: make([]float32, t.maxSeq),
		}
		t.ws[worker] = ws
	}
	return t.j.run(p, t.parts, ws)
}

// run computes part id of parts of the job.
func (j *job) run(id, parts int, ws *workspace) error {
	switch j.kind {
	case jobProduct:
		if j.gate {
			return j.gatedProduct(id, parts, ws)
		}
		// Units of partAlign weight rows, numbered over the linears one
		// after the other; the part takes units [ulo, uhi).
		units := 0
		for _, f := range j.lins[:j.nlin] {
			units += (f.lin.Out + partAlign - 1) / partAlign
		}
		ulo, uhi := units*id/parts, units*(id+1)/parts
		first := 0 // the first unit of linear i
		for k, f := range j.lins[:j.nlin] {
			out := f.lin.Out
			u := (out + partAlign - 1) / partAlign
			lo, hi := min(out, (max(ulo, first)-first)*partAlign), min(out, (min(uhi, first+u)-first)*partAlign)
			if lo < hi {
				if err := j.product(f.lin, f.y, lo, hi, ws); err != nil {
					return err
				}
				if j.lr != nil {
					j.expand(k, f.y, out, lo, hi)
				}
				if j.resid != nil {
					for i := range j.n {
						kernels.Add(j.resid[i*out+lo:i*out+hi], f.y[i*out+lo:i*out+hi])
					}
				}
			}
			first += u
		}
		return nil
	case jobAdapter:
		return j.adapters(j.n*id/parts, j.n*(id+1)/parts)
	case jobShrink:
		j.lr.shrink(j.n*id/parts, j.n*(id+1)/parts)
		return nil
	case jobPack:
		kernels.PackPanelsCols(j.panels, j.x, j.n, j.width, j.width*id/parts, j.width*(id+1)/parts)
		if j.lr != nil && len(j.lr.terms) > 0 {
			j.lr.shrink(j.n*id/parts, j.n*(id+1)/parts)
		}
		return nil
	case jobSwiGLUPack:
		// Column ranges of whole 16-float vectors, as the kernels run them.
		vecs := (j.width + 15) / 16
		lo, hi := min(j.width, vecs*id/parts*16), min(j.width, vecs*(id+1)/parts*16)
		for i := range j.n {
			at := i * j.width
			kernels.SwiGLU(j.y[at+lo:at+hi], j.y[at+lo:at+hi], j.x[at+lo:at+hi])
		}
		kernels.PackPanelsCols(j.panels, j.y, j.n, j.width, lo, hi)
		return nil
	case jobSwiGLU:
		lo, hi := j.n*id/parts*j.width, j.n*(id+1)/parts*j.width
		kernels.SwiGLU(j.y[lo:hi], j.y[lo:hi], j.x[lo:hi])
		return nil
	default:
		j.attend(len(j.rows)*id/parts, len(j.rows)*(id+1)/parts, ws)
		return nil
	}
}

// gatedProduct runs part id of parts of the gate and up projections and
// their gating (Batch.linearGated): units of partAlign columns of both,
// the part's columns computed in each, terms added, then gated and packed.
func (j *job) gatedProduct(id, parts int, ws *workspace) error {
	out := j.lins[0].lin.Out
	units := (out + partAlign - 1) / partAlign
	lo, hi := min(out, units*id/parts*partAlign), min(out, units*(id+1)/parts*partAlign)
	if lo >= hi {
		return nil
	}
	for k, f := range j.lins[:2] {
		if err := j.product(f.lin, f.y, lo, hi, ws); err != nil {
			return err
		}
		if j.lr != nil {
			j.expand(k, f.y, out, lo, hi)
		}
	}
	gate, up := j.lins[0].y, j.lins[1].y
	for i := range j.n {
		at := i * out
		kernels.SwiGLU(gate[at+lo:at+hi], gate[at+lo:at+hi], up[at+lo:at+hi])
	}
	if j.gated != nil {
		kernels.PackPanelsCols(j.gated, gate, j.n, out, lo, hi)
	}
	return nil
}

// product computes columns [lo, hi) of y = x·Wᵀ (+ bias) for all the tokens
// (or the rows of j.ys).
func (j *job) product(lin *model.Linear, y []float32, lo, hi int, ws *workspace) error {
	if err := j.mulT(lin, y, lo, hi, ws); err != nil {
		return err
	}
	if bias := lin.Bias; bias != nil {
		out := lin.Out
		for i := range j.n {
			if j.ys != nil {
				kernels.Add(j.ys[i][lo:hi], bias[lo:hi])
			} else {
				kernels.Add(y[i*out+lo:i*out+hi], bias[lo:hi])
			}
		}
	}
	return nil
}

// mulT computes columns [lo, hi) of y = x·Wᵀ for all the tokens. A format
// without row ranges (and no panels) runs whole, in the part that has
// its row 0.
func (j *job) mulT(lin *model.Linear, y []float32, lo, hi int, ws *workspace) error {
	n := j.n
	in, out := lin.In, lin.Out
	if j.panels != nil {
		if lin.Dense != nil {
			if j.ys != nil {
				kernels.MulTPanelsRows(j.ys, lo, j.panels, n, lin.Dense[lo*in:hi*in], in, hi-lo, ws.panel)
			} else {
				kernels.MulTPanels(y[lo:], out, j.panels, n, lin.Dense[lo*in:hi*in], in, hi-lo, ws.panel)
			}
			return nil
		}
		// Each weight is expanded once for the step, a tile at a time.
		step := max(12, tileElems/in/12*12)
		for r := lo; r < hi; r += step {
			e := min(hi, r+step)
			tile := ws.tile[:(e-r)*in]
			if err := lin.Quantized.DequantizeRows(tile, r, e); err != nil {
				return fmt.Errorf("%s: %w", lin.Name, err)
			}
			if j.ys != nil {
				kernels.MulTPanelsRows(j.ys, r, j.panels, n, tile, in, e-r, ws.panel)
			} else {
				kernels.MulTPanels(y[r:], out, j.panels, n, tile, in, e-r, ws.panel)
			}
		}
		return nil
	}
	if canSplit(lin) {
		if err := mulRows(lin, y, j.x, n, lo, hi); err != nil {
			return fmt.Errorf("%s: %w", lin.Name, err)
		}
		return nil
	}
	if lo == 0 {
		if err := lin.Quantized.MulT(y[:n*out], j.x[:n*in], n); err != nil {
			return fmt.Errorf("%s: %w", lin.Name, err)
		}
	}
	return nil
}

// adapters adds the AddDelta terms of tokens [lo, hi): each group of
// adjacent rows sharing an adapter that is not a LowRankAdapter, cut at lo
// and hi, the group's terms of the linears one after the other.
func (j *job) adapters(lo, hi int) error {
	t := 0
	for i := 0; i < len(j.rows) && t < hi; {
		a := j.rows[i].Adapter
		start := t
		for ; i < len(j.rows) && j.rows[i].Adapter == a; i++ {
			t += len(j.rows[i].Tokens)
		}
		s, e := max(start, lo), min(t, hi)
		if _, ok := a.(LowRankAdapter); a == nil || ok || s >= e {
			continue // none, or run with the product
		}
		for _, f := range j.lins[:j.nlin] {
			in, out := f.lin.In, f.lin.Out
			if j.ys == nil {
				if err := a.AddDelta(f.lin, f.y[s*out:e*out], j.x[s*in:e*in], e-s); err != nil {
					return fmt.Errorf("infer: adapter at %s: %w", f.lin.Name, err)
				}
				continue
			}
			for i := s; i < e; i++ { // rows of a buffer of their own, one token each
				if err := a.AddDelta(f.lin, j.ys[i][:out], j.x[i*in:(i+1)*in], 1); err != nil {
					return fmt.Errorf("infer: adapter at %s: %w", f.lin.Name, err)
				}
			}
		}
	}
	return nil
}

// attend runs attention (Batch.attention) for the tokens of rows [lo, hi):
// each token's query and key normed (with q/k norms) and rotated, its key
// and value stored at its position in its sequence's cache of the job's
// layer, then its attention over positions 0…pos, or with a sliding window
// W the last W of them.
func (j *job) attend(lo, hi int, ws *workspace) {
	hd, qDim, kvDim, half := j.hd, j.qDim, j.kvDim, j.half
	t := 0
	for _, r := range j.rows[:lo] {
		t += len(r.Tokens)
	}
	t0 := t
	for ri, r := range j.rows[lo:hi] {
		if lo+ri+1 < hi {
			// The next row's cache arrives while this row's attention
			// runs: a step's caches, read once each, are in memory, not
			// in the caches, and one head's keys after the other (a
			// stride of a row per key) keep few of their misses in flight.
			// The part's first row is not asked for: nothing would run
			// meanwhile (a step of one row prefetches nothing).
			j.prefetchCache(j.rows[lo+ri+1])
		}
		s := r.Seq
		keys, values := s.keys[j.layer], s.values[j.layer]
		for i := range r.Tokens {
			pos := s.pos + i
			q, k := j.q[t*qDim:(t+1)*qDim], j.k[t*kvDim:(t+1)*kvDim]
			if j.qNorm != nil {
				kernels.RMSNorm(q, q, j.qNorm, j.eps)
				kernels.RMSNorm(k, k, j.kNorm, j.eps)
			}
			cos, sin := j.cos[t*half:(t+1)*half], j.sin[t*half:(t+1)*half]
			kernels.Rope(q, q, cos, sin, hd, false)
			kernels.Rope(k, k, cos, sin, hd, false)
			copy(keys[pos*kvDim:(pos+1)*kvDim], k)
			copy(values[pos*kvDim:(pos+1)*kvDim], j.v[t*kvDim:(t+1)*kvDim])
			first := 0
			if j.window > 0 {
				first = max(0, pos+1-j.window)
			}
			for h := range j.heads {
				at := t*qDim + h*hd
				off := first*kvDim + h/j.group*hd
				kernels.AttendCachedFast(j.attn[at:at+hd], ws.scores[:pos+1-first], q[h*hd:(h+1)*hd], keys[off:], values[off:], kvDim)
			}
			if j.panels != nil {
				packRow(j.panels, j.attn[t*qDim:(t+1)*qDim], t)
			}
			t++
		}
	}
	if j.lr != nil && len(j.lr.terms) > 0 {
		j.lr.shrink(t0, t)
	}
}

// prefetchCache asks for the keys and values of r's sequence at the job's
// layer that r's first token reads: the positions before the row's tokens
// (within the sliding window), which are already stored.
func (j *job) prefetchCache(r BatchRow) {
	s := r.Seq
	first := 0
	if j.window > 0 {
		first = max(0, s.pos+1-j.window)
	}
	if first >= s.pos {
		return
	}
	kernels.Prefetch(s.keys[j.layer][first*j.kvDim : s.pos*j.kvDim])
	kernels.Prefetch(s.values[j.layer][first*j.kvDim : s.pos*j.kvDim])
}

// packRow writes row t of a matrix [n, len(x)], x, where kernels.PackPanels
// puts it: the part of the packing that one row's producer can do (other
// rows' parts write the other elements of the same panel).
func packRow(panels, x []float32, t int) {
	const w = kernels.PanelWidth
	in := len(x)
	p := panels[t/w*w*in : (t/w+1)*w*in]
	p = p[t%w:]
	for k, v := range x {
		p[k*w] = v
	}
}
