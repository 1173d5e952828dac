package infer

import "github.com/golora/golora/internal/kernels"

// allOutputs computes the AllLogits of the rows that want them: the output
// head over every token of those rows, each with its row's adapter, after
// the final norm. It runs only when a row asks (scoring a prompt), so the
// decoding steps of a server pay nothing for it. It reads b.x, the last
// layer's residual stream of the step, and reuses the head's scratch.
func (b *Batch) allOutputs(rows []BatchRow) error {
	c := &b.w.Config
	d, vocab := c.Dim, c.VocabSize
	m := 0
	for _, r := range rows {
		if r.AllLogits != nil {
			m += len(r.Tokens)
		}
	}
	if m == 0 {
		return nil
	}
	b.last = grow(b.last, m*d)
	want := b.want[:0]
	t, k := 0, 0
	for _, r := range rows {
		if r.AllLogits != nil {
			copy(b.last[k*d:], b.x[t*d:(t+len(r.Tokens))*d])
			k += len(r.Tokens)
			want = append(want, BatchRow{Tokens: r.Tokens, Adapter: r.Adapter, AllLogits: r.AllLogits})
		}
		t += len(r.Tokens)
	}
	b.want = want
	last := b.last[:m*d]
	kernels.RMSNorm(last, last, b.w.Norm, c.NormEps)
	head := fused{lin: b.w.Output}
	if err := b.prepare(want, last, m, d, head); err != nil {
		return err
	}
	if m >= panelMinTokens {
		// The panel kernel writes each token's logits into its row's
		// AllLogits: no [m, VocabSize] scratch, no copy.
		ys := b.wantLogits[:0]
		for _, r := range want {
			for t := range r.Tokens {
				ys = append(ys, r.AllLogits[t*vocab:(t+1)*vocab])
			}
		}
		b.wantLogits = ys
		return b.linearRows(want, ys, last, head)
	}
	b.allLogits = grow(b.allLogits, m*vocab)
	head.y = b.allLogits
	if err := b.linear(want, last, head); err != nil {
		return err
	}
	k = 0
	for _, r := range want {
		k += copy(r.AllLogits, b.allLogits[k:k+len(r.AllLogits)])
	}
	return nil
}
