package graph

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"

	"github.com/golora/golora/model"
	"github.com/golora/golora/quant"
)

// graphAs16Bit returns a copy of w whose embedding and output head are BF16
// matrices (quant.Half) of the same values (w's are BF16-rounded), sharing
// the blocks; a tied head shares the embedding's matrix, as a loader makes
// it.
func graphAs16Bit(t *testing.T, w *model.Weights) *model.Weights {
	t.Helper()
	c := w.Config
	emb, err := quant.ToBF16(w.Embedding, c.VocabSize, c.Dim)
	if err != nil {
		t.Fatal(err)
	}
	out := *w
	out.Embedding, out.EmbeddingMatrix = nil, emb
	head := &model.Linear{Name: w.Output.Name, Out: w.Output.Out, In: w.Output.In, Quantized: emb}
	if !c.TiedOutput {
		if head.Quantized, err = quant.ToBF16(w.Output.Dense, w.Output.Out, w.Output.In); err != nil {
			t.Fatal(err)
		}
	}
	out.Output = head
	if err := out.Validate(); err != nil {
		t.Fatal(err)
	}
	return &out
}

// TestGraph16BitHead trains an adapter below a frozen BF16 head (and over a
// BF16 embedding), tied and untied: the loss and the adapter's gradient
// match those of the float32 head with the same values (the head's products
// then decode the 16-bit rows into their panels), and the gradient matches
// central differences of the loss.
func TestGraph16BitHead(t *testing.T) {
	for _, tied := range []bool{false, true} {
		cfg := graphGQAConfig
		cfg.TiedOutput = tied
		w32 := graphSynthetic(cfg, 4, graphBF16)
		w16 := graphAs16Bit(t, w32)
		const batch, seqLen = 2, 6
		rng := rand.New(rand.NewPCG(3, 3))
		tokens := graphRandomTokens(rng, batch*seqLen, cfg.VocabSize)
		targets := graphTargets(tokens, seqLen)
		run := func(w *model.Weights) (*Graph, *gorgonia.Node, float32, []float32) {
			ad := &graphTestAdapter{only: "model.layers.1.mlp.down_proj", params: map[string]*gorgonia.Node{}, rng: rand.New(rand.NewPCG(1, 2))}
			gr, err := New(w, Options{Batch: batch, SeqLen: seqLen, Adapter: ad})
			if err != nil {
				t.Fatal(err)
			}
			p := ad.params[ad.only]
			if _, err := gr.Differentiate(p); err != nil {
				t.Fatal(err)
			}
			if err := gr.SetBatch(tokens, targets); err != nil {
				t.Fatal(err)
			}
			loss, err := gr.ForwardBackward(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			gv, err := p.Grad()
			if err != nil {
				t.Fatal(err)
			}
			return gr, p, loss, append([]float32(nil), gv.Data().([]float32)...)
		}
		gr32, _, loss32, grad32 := run(w32)
		gr32.Close()
		gr16, p, loss16, grad16 := run(w16)
		defer gr16.Close()
		if d := math.Abs(float64(loss16 - loss32)); d > 1e-5*math.Abs(float64(loss32)) {
			t.Fatalf("tied %v: loss %v with the BF16 head, %v with float32", tied, loss16, loss32)
		}
		var norm float64
		for _, g := range grad32 {
			norm = math.Max(norm, math.Abs(float64(g)))
		}
		if norm == 0 {
			t.Fatalf("tied %v: the adapter's gradient is zero", tied)
		}
		for i := range grad32 {
			if d := math.Abs(float64(grad16[i] - grad32[i])); d > 1e-5*norm {
				t.Fatalf("tied %v: gradient[%d] = %v with the BF16 head, %v with float32", tied, i, grad16[i], grad32[i])
			}
		}
		pv := p.Value().Data().([]float32)
		lossAt := func(i int, v float32) float64 {
			old := pv[i]
			pv[i] = v
			defer func() { pv[i] = old }()
			l, err := gr16.Forward(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return float64(l)
		}
		graphCheckCoords(t, "adapter parameter below a BF16 head", grad16, func(i int) float64 {
			const eps = 1e-2
			return (lossAt(i, pv[i]+eps) - lossAt(i, pv[i]-eps)) / (2 * eps)
		}, 12, 2e-2)
	}
}
