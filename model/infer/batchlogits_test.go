package infer

import (
	"context"
	"math"
	"testing"

	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
)

// TestBatchAllLogits checks a step's AllLogits, the head's output at every
// token of a row, against a Generator running the same sequence a token at a
// time with the same adapter (the base, an AddDelta adapter and a
// LowRankAdapter), within float32 rounding; that the last row of AllLogits
// is the row's Logits; and that rows without AllLogits are unchanged by
// their neighbours asking for it. Steps of fewer tokens than panelMinTokens
// and of more take different product kernels, so both are run. Dense and
// NF4 bases.
func TestBatchAllLogits(t *testing.T) {
	for _, quantized := range []bool{false, true} {
		ck, err := model.Default()
		if err != nil {
			t.Fatal(err)
		}
		w := ck.Weights
		if quantized {
			if err := w.Quantize(context.Background(), nf4.Quantizer(nf4.Options{})); err != nil {
				t.Fatal(err)
			}
		}
		V := w.Config.VocabSize
		adapters := []Adapter{nil, newLowRank(w, 4, 1), newLowRank(w, 8, 2).fused(false)}
		prompts := [][]int{
			{1, 403, 251, 40, 7, 88, 301, 12, 9},
			{1, 22, 317, 5},
			{1, 100, 44, 45, 46, 47},
		}
		for _, split := range [][]int{{2, 1, 1}, {9, 4, 6}} {
			b, err := NewBatch(w)
			if err != nil {
				t.Fatal(err)
			}
			var rows []BatchRow
			for i, p := range prompts {
				seq, err := b.NewSequence(len(p))
				if err != nil {
					t.Fatal(err)
				}
				// The first tokens in a step of their own, the rest (the
				// chunk asked about) together with the other rows.
				if first := p[:len(p)-split[i]]; len(first) > 0 {
					if err := b.Step([]BatchRow{{Seq: seq, Tokens: first, Adapter: adapters[i]}}); err != nil {
						t.Fatal(err)
					}
				}
				r := BatchRow{Seq: seq, Tokens: p[len(p)-split[i]:], Adapter: adapters[i], Logits: make([]float32, V)}
				if i != 1 {
					r.AllLogits = make([]float32, split[i]*V)
				}
				rows = append(rows, r)
			}
			if err := b.Step(rows); err != nil {
				t.Fatal(err)
			}
			for i, p := range prompts {
				g, err := NewGenerator(w, GeneratorOptions{MaxLen: len(p), Adapter: adapters[i]})
				if err != nil {
					t.Fatal(err)
				}
				start := len(p) - split[i]
				var logits []float32
				for k, tok := range p {
					if logits, err = g.Step(tok); err != nil {
						t.Fatal(err)
					}
					if k < start || rows[i].AllLogits == nil {
						continue
					}
					got := rows[i].AllLogits[(k-start)*V : (k-start+1)*V]
					if d, scale := diffScale(got, logits); d > 1e-4*max(1, scale) {
						t.Errorf("nf4 %v, split %v, row %d, token %d: all-token logits differ from the Generator's by %g (scale %g)", quantized, split, i, k, d, scale)
					}
				}
				if d, scale := diffScale(rows[i].Logits, logits); d > 1e-4*max(1, scale) {
					t.Errorf("nf4 %v, split %v, row %d: last logits differ from the Generator's by %g", quantized, split, i, d)
				}
				if all := rows[i].AllLogits; all != nil {
					if d, scale := diffScale(all[len(all)-V:], rows[i].Logits); d > 1e-5*max(1, scale) {
						t.Errorf("nf4 %v, split %v, row %d: last row of AllLogits differs from Logits by %g", quantized, split, i, d)
					}
				}
			}
		}
	}
}

// diffScale returns the largest |a−b| and the largest |b|.
func diffScale(a, b []float32) (diff, scale float64) {
	for j, v := range b {
		diff = max(diff, math.Abs(float64(a[j]-v)))
		scale = max(scale, math.Abs(float64(v)))
	}
	return diff, scale
}
