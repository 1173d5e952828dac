package infer

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
)

// BenchmarkBatchDecode compares a decode step of 1 sequence on a Generator
// with a 32-row Batch step (every row decoding one token) on a random
// stories15M-shaped NF4 base, side by side. tokens/s counts generated tokens
// of all rows; the ratio of the two is what continuous batching buys.
// median-ms/step is the median wall time of a batch step.
func BenchmarkBatchDecode(b *testing.B) {
	w := model.RandomWeights(stories15MConfig, 15)
	if err := w.Quantize(context.Background(), nf4.Quantizer(nf4.Options{})); err != nil {
		b.Fatal(err)
	}
	const prompt, steps = 16, 64
	b.Run("generator/rows=1", func(b *testing.B) {
		g, err := NewGenerator(w, GeneratorOptions{MaxLen: prompt + steps})
		if err != nil {
			b.Fatal(err)
		}
		toks := make([]int, prompt)
		for i := range toks {
			toks[i] = 3 + i*7
		}
		b.ReportAllocs()
		n := 0
		var cpu time.Duration
		for b.Loop() {
			if g.Pos() == g.MaxLen() {
				b.StopTimer()
				g.Reset()
				if _, err := g.Prefill(toks); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			if g.Pos() == 0 {
				if _, err := g.Prefill(toks); err != nil {
					b.Fatal(err)
				}
			}
			c0 := cpuTime()
			if _, err := g.Step(5); err != nil {
				b.Fatal(err)
			}
			cpu += cpuTime() - c0
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
		b.ReportMetric(float64(n)/cpu.Seconds(), "tokens/cpu-s")
	})
	for _, rows := range []int{1, 32} {
		b.Run("batch/rows="+strconv.Itoa(rows), func(b *testing.B) {
			bt, err := NewBatch(w)
			if err != nil {
				b.Fatal(err)
			}
			// The caches and logits are allocated once and reused, as a
			// server's pool of sequences does (serve.BatchedModel): fresh
			// memory at every reset would time the page faults of its first
			// writes.
			seqs := make([]*Sequence, rows)
			logits := make([][]float32, rows)
			for i := range seqs {
				seqs[i], _ = bt.NewSequence(prompt + steps)
				logits[i] = make([]float32, w.Config.VocabSize)
			}
			reset := func() {
				for _, s := range seqs {
					s.Reset()
				}
				br := make([]BatchRow, rows)
				for i := range br {
					toks := make([]int, prompt)
					for j := range toks {
						toks[j] = 3 + i + j*7
					}
					br[i] = BatchRow{Seq: seqs[i], Tokens: toks}
				}
				if err := bt.Step(br); err != nil {
					b.Fatal(err)
				}
			}
			reset()
			br := make([]BatchRow, rows)
			tok := make([]int, rows)
			b.ReportAllocs()
			n := 0
			var cpu time.Duration
			// The last 1024 steps' wall times, in a ring allocated before
			// timing (the step itself does not allocate).
			steps := make([]time.Duration, 0, 1024)
			for b.Loop() {
				if seqs[0].Pos() == seqs[0].MaxLen() {
					b.StopTimer()
					reset()
					b.StartTimer()
				}
				for i := range br {
					tok[i] = 5 + i
					br[i] = BatchRow{Seq: seqs[i], Tokens: tok[i : i+1], Logits: logits[i]}
				}
				c0, t0 := cpuTime(), time.Now()
				if err := bt.Step(br); err != nil {
					b.Fatal(err)
				}
				if d := time.Since(t0); len(steps) < cap(steps) {
					steps = append(steps, d)
				} else {
					steps[n/rows%cap(steps)] = d
				}
				cpu += cpuTime() - c0
				n += rows
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(float64(n)/cpu.Seconds(), "tokens/cpu-s")
			// The median step is what a shared machine disturbs least: a
			// step that another process slowed counts once, not by its
			// length.
			slices.Sort(steps)
			b.ReportMetric(float64(steps[len(steps)/2].Microseconds())/1e3, "median-ms/step")
		})
	}
}
