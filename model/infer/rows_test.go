package infer

import (
	"context"
	"runtime"
	"testing"

	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant/ggml"
)

// splitConfig is a model whose products are large enough for decode steps
// to split them by rows (splitChunkWeights), and whose attention is split by
// heads from position 32 on (splitMinAttention).
var splitConfig = model.Config{
	Dim: 128, HiddenDim: 512, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 32, VocabSize: 1000,
	MaxSeqLen: 64, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true,
}

// TestSplitDecodeMatchesOneGoroutine: decode steps whose products are split
// over two goroutines give the bits of steps run on one, dense, NF4 and
// ggml's Q4_0, with the int8 head too, and do not allocate.
func TestSplitDecodeMatchesOneGoroutine(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	dense := model.RandomWeights(splitConfig, 7)
	quantized := model.RandomWeights(splitConfig, 7)
	if err := quantized.Quantize(context.Background(), nf4.Quantizer(nf4.Options{})); err != nil {
		t.Fatal(err)
	}
	q4 := model.RandomWeights(splitConfig, 7)
	q4Quantizer, ok := ggml.QuantizerFor(ggml.Q4_0)
	if !ok {
		t.Fatal("no q4_0 quantizer")
	}
	if err := q4.Quantize(context.Background(), q4Quantizer); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		w    *model.Weights
		head HeadPrecision
	}{{dense, HeadExact}, {quantized, HeadExact}, {q4, HeadExact}, {quantized, HeadInt8}} {
		w := c.w
		runtime.GOMAXPROCS(2)
		g2, err := NewGenerator(w, GeneratorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rows := g2.chunkRows(w.Layers[0].Gate); rows == w.Layers[0].Gate.Out {
			t.Fatalf("the test model's gate_proj would not be split on two CPUs")
		}
		decode := func(procs int) [][]float32 {
			runtime.GOMAXPROCS(procs)
			g, err := NewGenerator(w, GeneratorOptions{Head: c.head})
			if err != nil {
				t.Fatal(err)
			}
			var out [][]float32
			for i := range 40 {
				tok := (i*397 + 1) % w.Config.VocabSize
				logits, err := g.Step(tok)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				out = append(out, append([]float32(nil), logits...))
			}
			if procs > 1 {
				if allocs := stepAllocs(t, g, 42, 20); allocs != 0 {
					t.Errorf("a split Step allocates %v times per token, want 0", allocs)
				}
			}
			return out
		}
		one, two := decode(1), decode(2)
		for s := range one {
			for i := range one[s] {
				if one[s][i] != two[s][i] {
					t.Fatalf("%s, head %v, step %d logit %d: %v on two goroutines, %v on one", w.Layers[0].Gate.Name, c.head, s, i, two[s][i], one[s][i])
				}
			}
		}
	}
}
