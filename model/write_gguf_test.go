package model

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/quant/ggml"
)

// TestWriteGGUFMatchesLlamaQuantize: stories260K written as Q8_0 holds,
// tensor for tensor, the bytes llama.cpp's llama_model_quantize wrote from
// the same model (quant/ggml/testdata/README.md): Q8_0 matrices, F16 for the
// 172-wide ffn_down, F32 norms, query and key rows back in GGUF's order. The
// file loads back with its Q8_0 linears.
func TestWriteGGUFMatchesLlamaQuantize(t *testing.T) {
	b, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "stories.q8_0.gguf")
	if err := WriteGGUF(path, b, ggml.Q8_0); err != nil {
		t.Fatal(err)
	}
	ours, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	theirs, err := gguf.Open("../quant/ggml/testdata/stories260K.q8_0.llama.gguf")
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	if len(ours.Tensors()) != len(theirs.Tensors())-1 {
		t.Fatalf("%d tensors, llama.cpp's file %d (with output.weight, which a tied head leaves out)", len(ours.Tensors()), len(theirs.Tensors()))
	}
	for _, ti := range ours.Tensors() {
		tj, ok := theirs.Tensor(ti.Name)
		if !ok || ti.Type != tj.Type {
			t.Fatalf("%s: type %v, llama.cpp's %v (present %t)", ti.Name, ti.Type, tj.Type, ok)
		}
		a, _ := ours.TensorBytes(ti.Name)
		c, _ := theirs.TensorBytes(ti.Name)
		if !bytes.Equal(a, c) {
			t.Fatalf("%s: data differs from llama.cpp's", ti.Name)
		}
	}
	w, _, err := loadGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := w.Layers[0].Q.Quantized.(*ggml.Matrix); !ok || m.Type() != ggml.Q8_0 {
		t.Fatalf("loaded q_proj is %T", w.Layers[0].Q.Quantized)
	}
}

func TestWriteGGUFErrors(t *testing.T) {
	b, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "x.gguf")
	if err := WriteGGUF(path, b, ggml.Q5_0); err == nil {
		t.Fatal("q5_0 accepted")
	}
	b.Tokenizer = nil
	if err := WriteGGUF(path, b, ggml.Q8_0); err == nil {
		t.Fatal("a model without a SentencePiece tokenizer accepted")
	}
}
