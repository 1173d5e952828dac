package serve

import (
	"context"
	"slices"
	"testing"
	"unsafe"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant/ggml"
)

// TestMoveOffHeap: the embedded model, dense and in NF4, gives bit-identical
// logits after its arrays are moved out of the Go heap, and the tied head
// still shares the embedding.
func TestMoveOffHeap(t *testing.T) {
	for _, quantize := range []bool{false, true} {
		fresh := func() *model.Weights {
			w := embedded(t).Weights
			if quantize {
				if err := w.Quantize(context.Background(), nf4.Quantizer(nf4.Options{})); err != nil {
					t.Fatal(err)
				}
			}
			return w
		}
		want := prefillLogits(t, fresh())
		w := fresh()
		oldEmb := unsafe.SliceData(w.Embedding)
		n, err := MoveOffHeap(w)
		if err != nil {
			t.Fatal(err)
		}
		if n < int64(4*len(w.Embedding)) {
			t.Errorf("moved %d bytes, less than the embedding's %d", n, 4*len(w.Embedding))
		}
		if unsafe.SliceData(w.Embedding) == oldEmb {
			t.Error("the embedding was not moved")
		}
		if w.Config.TiedOutput && unsafe.SliceData(w.Output.Dense) != unsafe.SliceData(w.Embedding) {
			t.Error("the tied head no longer shares the embedding")
		}
		if got := prefillLogits(t, w); !slices.Equal(got, want) {
			t.Errorf("quantized %v: logits changed by the move", quantize)
		}
	}
}

// TestMoveOffHeapGGUFBlocks: a GGUF's Q8_0 embedding and tied head, kept in
// their blocks, stay where they are and stay tied (the head is the
// embedding matrix), and the logits do not change.
func TestMoveOffHeapGGUFBlocks(t *testing.T) {
	load := func() *model.Weights {
		t.Helper()
		b, err := model.Load(context.Background(), "../quant/ggml/testdata/stories260K.q8_0.llama.gguf", model.LoadOptions{WeightsOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		return b.Weights
	}
	want := prefillLogits(t, load())
	w := load()
	emb := w.EmbeddingMatrix
	if _, ok := emb.(*ggml.Matrix); !ok || w.Output.Quantized != emb {
		t.Fatalf("loaded embedding %T, head %T: want one ggml matrix", emb, w.Output.Quantized)
	}
	if _, err := MoveOffHeap(w); err != nil {
		t.Fatal(err)
	}
	if w.EmbeddingMatrix != emb || w.Output.Quantized != emb {
		t.Error("the move changed the ggml embedding or untied the head")
	}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := prefillLogits(t, w); !slices.Equal(got, want) {
		t.Error("logits changed by the move")
	}
}

// prefillLogits returns the logits w's Generator gives after a fixed
// four-token prompt.
func prefillLogits(t *testing.T, w *model.Weights) []float32 {
	t.Helper()
	g, err := infer.NewGenerator(w, infer.GeneratorOptions{MaxLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	out, err := g.Prefill([]int{1, 5, 9, 13})
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(out)
}
