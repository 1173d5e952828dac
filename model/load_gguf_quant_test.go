package model_test

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant/ggml"
)

// llama.cpp's own Q8_0 conversion of stories260K (quant/ggml/testdata/README.md:
// llama_model_quantize with LLAMA_FTYPE_MOSTLY_Q8_0), and the F32 GGUF it was
// made from.
const (
	storiesQ8_0GGUF = "../quant/ggml/testdata/stories260K.q8_0.llama.gguf"
	storiesF32GGUF  = "testdata/stories260K.gguf"
)

func loadWeights(t *testing.T, path string, opts model.LoadOptions) *model.Base {
	t.Helper()
	b, err := model.Load(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLoadGGUFQ8_0: llama.cpp's Q8_0 file loads with its linears kept as
// ggml Q8_0 matrices (the 172-wide ffn_down, which llama.cpp stored F16, as
// float32); every matrix is within Q8_0's rounding of the F32 model's, rows
// in the same (Hugging Face) order, and the logits are close to the F32
// model's with the same top token.
func TestLoadGGUFQ8_0(t *testing.T) {
	q8 := loadWeights(t, storiesQ8_0GGUF, model.LoadOptions{})
	f32 := loadWeights(t, storiesF32GGUF, model.LoadOptions{})
	if q8.Tokenizer == nil {
		t.Fatal("no tokenizer")
	}
	want, got := f32.Weights.Linears(), q8.Weights.Linears()
	for i, lin := range got {
		if lin.Quantized == nil {
			if lin.In%32 == 0 {
				t.Errorf("%s: dense, want Q8_0", lin.Name)
			}
			continue
		}
		m, ok := lin.Quantized.(*ggml.Matrix)
		if !ok || m.Type() != ggml.Q8_0 {
			t.Fatalf("%s: %T %v, want a ggml Q8_0 matrix", lin.Name, lin.Quantized, lin.Quantized.Format())
		}
		deq := make([]float32, lin.Out*lin.In)
		if err := m.DequantizeRows(deq, 0, lin.Out); err != nil {
			t.Fatal(err)
		}
		ref := want[i].Dense
		for r := range lin.Out {
			row := ref[r*lin.In : (r+1)*lin.In]
			var amax float64
			for _, x := range row {
				amax = max(amax, math.Abs(float64(x)))
			}
			// Q8_0 rounds each weight to a step of its block's absmax/127
			// (scale stored fp16): half a step plus the scale's rounding is
			// well within absmax/127 everywhere in the row.
			for c, x := range row {
				if d := math.Abs(float64(deq[r*lin.In+c] - x)); d > amax/127 {
					t.Fatalf("%s[%d,%d]: %v vs F32 %v (row absmax %v): rows out of order or wrong dequantization", lin.Name, r, c, deq[r*lin.In+c], x, amax)
				}
			}
		}
	}
	tokens := []int{1, 400, 300, 55, 200, 17, 42, 99}
	lq, lf := prefillLogits(t, q8.Weights, tokens), prefillLogits(t, f32.Weights, tokens)
	var maxDiff float64
	for i := range lq {
		maxDiff = max(maxDiff, math.Abs(float64(lq[i]-lf[i])))
	}
	// llama.cpp itself, on these two files and these tokens, differs by
	// 0.209 at most (quant/ggml/testdata/README.md).
	if maxDiff > 0.3 {
		t.Errorf("Q8_0 logits differ from F32 by up to %v, want ≤ 0.3", maxDiff)
	}
	if a, b := argmax(lq), argmax(lf); a != b {
		t.Errorf("top token %d, F32 model's %d", a, b)
	}
}

// TestLoadGGUFRequantize: with a Quantizer, Q8_0 linears stay Q8_0 unless
// Requantize is set; float ones (ffn_down) are quantized either way.
func TestLoadGGUFRequantize(t *testing.T) {
	q := nf4.Quantizer(nf4.Options{})
	for _, requantize := range []bool{false, true} {
		b := loadWeights(t, storiesQ8_0GGUF, model.LoadOptions{Quantizer: q, Requantize: requantize})
		for _, lin := range b.Weights.Linears() {
			if lin.Quantized == nil {
				t.Fatalf("requantize %t: %s stays dense", requantize, lin.Name)
			}
			_, isGGML := lin.Quantized.(*ggml.Matrix)
			if wantGGML := !requantize && lin.In%32 == 0; isGGML != wantGGML {
				t.Errorf("requantize %t: %s is %s", requantize, lin.Name, lin.Quantized.Format())
			}
		}
	}
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// TestLoadGGUFBlockEmbedding: loaded without a quantizer, a GGUF's
// block-quantized embedding and head stay in their format (a tied head is
// the embedding matrix itself), holding the values the float32 load
// (Float32Embedding) dequantizes them to, and decoding gives that load's
// logits (but for the float32 rounding of sums taken in another order) and
// greedy tokens: llama.cpp's Q8_0 stories260K, and a random untied model
// written in Q4_K.
func TestLoadGGUFBlockEmbedding(t *testing.T) {
	cfg := model.Config{Dim: 256, HiddenDim: 512, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 64, VocabSize: 512,
		MaxSeqLen: 64, NormEps: 1e-5, RopeTheta: 10000}
	b, err := model.Default()
	if err != nil {
		t.Fatal(err)
	}
	b.Weights = model.RandomWeights(cfg, 11)
	q4k := filepath.Join(t.TempDir(), "q4_k.gguf")
	if err := model.WriteGGUF(q4k, b, ggml.Q4_K); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path   string
		typ    ggml.Type
		tied   bool
		greedy bool // a trained model, whose greedy choices are no near ties
	}{{storiesQ8_0GGUF, ggml.Q8_0, true, true}, {q4k, ggml.Q4_K, false, false}} {
		blocks := loadWeights(t, tc.path, model.LoadOptions{WeightsOnly: true}).Weights
		dense := loadWeights(t, tc.path, model.LoadOptions{WeightsOnly: true, Float32Embedding: true}).Weights
		if err := blocks.Validate(); err != nil {
			t.Fatal(err)
		}
		if m, ok := blocks.EmbeddingMatrix.(*ggml.Matrix); !ok || m.Type() != tc.typ || blocks.Embedding != nil {
			t.Fatalf("%v: embedding is %T, want a %v ggml matrix", tc.typ, blocks.EmbeddingMatrix, tc.typ)
		}
		if tied := blocks.Output.Quantized == blocks.EmbeddingMatrix; tied != tc.tied || blocks.Config.TiedOutput != tc.tied {
			t.Errorf("%v: head is the embedding matrix %t, config tied %t, want %t", tc.typ, tied, blocks.Config.TiedOutput, tc.tied)
		}
		if m, ok := blocks.Output.Quantized.(*ggml.Matrix); !ok || m.Type() != tc.typ {
			t.Errorf("%v: head is %T, want a %v ggml matrix", tc.typ, blocks.Output.Quantized, tc.typ)
		}
		if dense.EmbeddingMatrix != nil || dense.Output.Quantized != nil {
			t.Errorf("%v: with Float32Embedding the embedding is %T and the head %T, want float32", tc.typ, dense.EmbeddingMatrix, dense.Output.Quantized)
		}
		emb, err := blocks.EmbeddingFloat32()
		if err != nil {
			t.Fatal(err)
		}
		head := make([]float32, blocks.Output.Out*blocks.Output.In)
		if err := blocks.Output.Quantized.DequantizeRows(head, 0, blocks.Output.Out); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(emb, dense.Embedding) || !slices.Equal(head, dense.Output.Dense) {
			t.Errorf("%v: the blocks' values differ from the float32 load's", tc.typ)
		}
		gb, err := infer.NewGenerator(blocks, infer.GeneratorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		gd, err := infer.NewGenerator(dense, infer.GeneratorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tok := 1
		var worst float64
		for step := range 40 {
			lb, err := gb.Step(tok)
			if err != nil {
				t.Fatal(err)
			}
			ld, err := gd.Step(tok)
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := slices.Min(ld), slices.Max(ld)
			for i := range ld {
				worst = max(worst, math.Abs(float64(lb[i]-ld[i]))/float64(hi-lo))
			}
			if tc.greedy && argmax(lb) != argmax(ld) {
				t.Errorf("%v: step %d: greedy token %d, the float32 load's %d", tc.typ, step, argmax(lb), argmax(ld))
			}
			tok = argmax(ld)
		}
		t.Logf("%v: largest logit difference %.3g of the spread", tc.typ, worst)
		if worst > 1e-5 {
			t.Errorf("%v: logits differ from the float32 load's by up to %.3g of their spread, want < 1e-5", tc.typ, worst)
		}
	}
}
