package infer

import (
	"context"
	"math"
	"testing"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/internal/archtest"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
)

// TestGenerator16BitEmbedding loads BF16 checkpoints of the llama3 (untied)
// and qwen2 (tied) fixtures with NF4 linears, once keeping the embedding and
// head in BF16 (the default) and once widening them (Float32Embedding):
//   - the logits of every position, stepped and prefilled, and a Batch
//     step's, are the same bits as those of the float32 load with only its
//     head made a BF16 matrix of its own values (the embedding rows are the
//     same values either way);
//   - against the float32 head itself they differ only by the summation
//     order of the head's products (within 1e-5 of the largest logit).
func TestGenerator16BitEmbedding(t *testing.T) {
	for _, name := range []string{"llama3", "qwen2"} {
		t.Run(name, func(t *testing.T) {
			src, golden := archtest.Load(t, name)
			dir := t.TempDir()
			if err := model.WriteHF(dir, src, model.BF16); err != nil {
				t.Fatal(err)
			}
			load := func(float32Embedding bool) *model.Weights {
				b, err := model.Load(context.Background(), dir, model.LoadOptions{WeightsOnly: true,
					Quantizer: nf4.Quantizer(nf4.Options{}), Float32Embedding: float32Embedding})
				if err != nil {
					t.Fatal(err)
				}
				return b.Weights
			}
			w16, w32 := load(false), load(true)
			if _, ok := w16.Output.Quantized.(*quant.Half); !ok || w16.EmbeddingMatrix == nil {
				t.Fatalf("head %T, embedding matrix %T: want BF16 matrices", w16.Output.Quantized, w16.EmbeddingMatrix)
			}
			c := w32.Config
			head, err := quant.ToBF16(w32.Output.Dense, c.VocabSize, c.Dim)
			if err != nil {
				t.Fatal(err)
			}
			sameHead := *w32
			sameHead.Output = &model.Linear{Name: w32.Output.Name, Out: c.VocabSize, In: c.Dim, Quantized: head}
			if c.TiedOutput {
				// A tied head is the embedding: here a BF16 copy of the
				// float32 load's.
				sameHead.Embedding, sameHead.EmbeddingMatrix = nil, head
			}
			got, gotPre := archStepLogits(t, w16, golden.Tokens)
			want, wantPre := archStepLogits(t, &sameHead, golden.Tokens)
			f32, _ := archStepLogits(t, w32, golden.Tokens)
			for i := range got {
				for j := range got[i] {
					if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
						t.Fatalf("position %d logit %d: %v with the loaded BF16 embedding and head, %v with the float32 load's values", i, j, got[i][j], want[i][j])
					}
				}
			}
			for i := range gotPre {
				for j := range gotPre[i] {
					if math.Float32bits(gotPre[i][j]) != math.Float32bits(wantPre[i][j]) {
						t.Fatalf("prefilled position %d logit %d: %v, want %v", i, j, gotPre[i][j], wantPre[i][j])
					}
				}
			}
			// The Batch: two rows (one prompt, one single token), so that
			// the head runs both as a product of rows and as a split
			// single row.
			batchLogits := func(w *model.Weights) [][]float32 {
				bt, err := NewBatch(w)
				if err != nil {
					t.Fatal(err)
				}
				out := [][]float32{make([]float32, c.VocabSize), make([]float32, c.VocabSize)}
				var rows []BatchRow
				for i, toks := range [][]int{golden.Tokens, golden.Tokens[:1]} {
					seq, err := bt.NewSequence(len(golden.Tokens))
					if err != nil {
						t.Fatal(err)
					}
					rows = append(rows, BatchRow{Seq: seq, Tokens: toks, Logits: out[i]})
				}
				if err := bt.Step(rows); err != nil {
					t.Fatal(err)
				}
				return out
			}
			gotB, wantB := batchLogits(w16), batchLogits(&sameHead)
			for i := range gotB {
				for j := range gotB[i] {
					if math.Float32bits(gotB[i][j]) != math.Float32bits(wantB[i][j]) {
						t.Fatalf("Batch row %d logit %d: %v, want %v", i, j, gotB[i][j], wantB[i][j])
					}
				}
			}
			var worst, scale float64
			for i := range got {
				for j := range got[i] {
					worst = math.Max(worst, math.Abs(float64(got[i][j]-f32[i][j])))
					scale = math.Max(scale, math.Abs(float64(f32[i][j])))
				}
			}
			t.Logf("%s: max |BF16 head − float32 head| %.3g of logits up to %.3g", name, worst, scale)
			if worst > 1e-5*scale {
				t.Errorf("BF16 head logits differ from the float32 head's by %v (logits up to %v)", worst, scale)
			}
		})
	}
}
