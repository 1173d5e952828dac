package model

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
)

// load16 writes w as a Hugging Face checkpoint in dtype and loads it with
// the NF4 quantizer, with or without Float32Embedding.
func load16(t *testing.T, w *Weights, dtype DType, float32Embedding bool) (*Weights, error) {
	t.Helper()
	dir := t.TempDir()
	if err := WriteHF(dir, w, dtype); err != nil {
		t.Fatal(err)
	}
	b, err := Load(context.Background(), dir, LoadOptions{WeightsOnly: true, Quantizer: nf4.Quantizer(nf4.Options{}), Float32Embedding: float32Embedding})
	if err != nil {
		return nil, err
	}
	return b.Weights, nil
}

// TestLoad16BitEmbedding loads BF16 and F16 checkpoints, tied and untied,
// with a quantizer: the embedding and untied head stay 16-bit (quant.Half,
// a tied head sharing the embedding's matrix), hold exactly the values
// Float32Embedding widens them to, take 2 bytes a value, and EmbedToken
// reads the same rows from either.
func TestLoad16BitEmbedding(t *testing.T) {
	for _, dtype := range []DType{BF16, F16} {
		for _, tied := range []bool{false, true} {
			cfg := hfTestConfig()
			cfg.TiedOutput = tied
			src := hfRandomWeights(cfg, 9, nil)
			w16, err := load16(t, src, dtype, false)
			if err != nil {
				t.Fatal(err)
			}
			w32, err := load16(t, src, dtype, true)
			if err != nil {
				t.Fatal(err)
			}
			name := string(dtype)
			if tied {
				name += " tied"
			}
			emb, ok := w16.EmbeddingMatrix.(*quant.Half)
			if !ok || w16.Embedding != nil || emb.IsF16() != (dtype == F16) {
				t.Fatalf("%s: embedding %T (float32 %d values), want a %s matrix alone", name, w16.EmbeddingMatrix, len(w16.Embedding), dtype)
			}
			if w32.EmbeddingMatrix != nil || w32.Output.Quantized != nil {
				t.Fatalf("%s: Float32Embedding kept a 16-bit embedding or head", name)
			}
			head, ok := w16.Output.Quantized.(*quant.Half)
			if !ok || tied && w16.Output.Quantized != w16.EmbeddingMatrix {
				t.Fatalf("%s: head %T, want the 16-bit matrix (the embedding's when tied)", name, w16.Output.Quantized)
			}
			widened, err := w16.EmbeddingFloat32()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(bitsOf(widened), bitsOf(w32.Embedding)) {
				t.Fatalf("%s: the 16-bit embedding widens to other values than the float32 load", name)
			}
			headValues, err := w16.Output.float32s()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(bitsOf(headValues), bitsOf(w32.Output.Dense)) {
				t.Fatalf("%s: the 16-bit head widens to other values than the float32 load", name)
			}
			row := make([]float32, cfg.Dim)
			for _, tok := range []int{0, 7, cfg.VocabSize - 1} {
				if err := w16.EmbedToken(row, tok); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(bitsOf(row), bitsOf(w32.Embedding[tok*cfg.Dim:(tok+1)*cfg.Dim])) {
					t.Fatalf("%s: EmbedToken(%d) differs from the float32 row", name, tok)
				}
			}
			b16, b32 := w16.WeightBytes(), w32.WeightBytes()
			n := int64(cfg.VocabSize * cfg.Dim)
			saved := 2 * n
			if !tied {
				saved *= 2
			}
			if b32.Total()-b16.Total() != saved || head.StorageBytes() != 2*n {
				t.Fatalf("%s: weights %d bytes with 16-bit embedding, %d without; want %d fewer", name, b16.Total(), b32.Total(), saved)
			}
		}
	}
}

// bitsOf returns the bits of v, so that comparisons are exact.
func bitsOf(v []float32) []uint32 {
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = math.Float32bits(x)
	}
	return out
}

// TestLoad16BitEmbeddingFallsBack: a float32 checkpoint, or a load without
// a quantizer, keeps the embedding and head in float32 — there is nothing
// 16-bit to keep, and nothing is rounded.
func TestLoad16BitEmbeddingFallsBack(t *testing.T) {
	src := hfRandomWeights(hfTestConfig(), 3, nil)
	w, err := load16(t, src, F32, false)
	if err != nil {
		t.Fatal(err)
	}
	if w.EmbeddingMatrix != nil || w.Output.Quantized != nil || !slices.Equal(w.Embedding, src.Embedding) {
		t.Fatalf("F32 checkpoint: embedding matrix %T, head %T; want float32 values as stored", w.EmbeddingMatrix, w.Output.Quantized)
	}
	dir := t.TempDir()
	if err := WriteHF(dir, src, BF16); err != nil {
		t.Fatal(err)
	}
	plain, err := loadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	if plain.EmbeddingMatrix != nil || plain.Embedding == nil {
		t.Fatal("a load without a quantizer kept a 16-bit embedding")
	}
}

// TestLoad16BitEmbeddingErrors: a shape mismatch names the tensor, a NaN
// in a 16-bit embedding or head names the tensor and element, and Validate
// refuses an embedding held twice or misshapen.
func TestLoad16BitEmbeddingErrors(t *testing.T) {
	cfg := hfTestConfig()
	src := hfRandomWeights(cfg, 4, nil)
	dir := t.TempDir()
	if err := WriteHF(dir, src, BF16); err != nil {
		t.Fatal(err)
	}
	// A config with a larger vocabulary than the tensors.
	data, err := os.ReadFile(filepath.Join(dir, hfConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), `"vocab_size": 32`, `"vocab_size": 40`, 1))
	if err := os.WriteFile(filepath.Join(dir, hfConfigFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(context.Background(), dir, LoadOptions{WeightsOnly: true, Quantizer: nf4.Quantizer(nf4.Options{})})
	if err == nil || !strings.Contains(err.Error(), "tensor model.embed_tokens.weight has shape [32 16], want [40 16]") {
		t.Fatalf("vocabulary mismatch: got %v", err)
	}

	for _, tc := range []struct {
		name  string
		set   func(w *Weights)
		error string
	}{
		{"embedding", func(w *Weights) { w.Embedding[3*cfg.Dim+5] = float32(math.Inf(1)) }, "tensor model.embed_tokens.weight element 53 (row 3) is not finite"},
		{"head", func(w *Weights) { w.Output.Dense[17] = float32(math.NaN()) }, "tensor lm_head.weight element 17 (row 1) is not finite"},
	} {
		bad := hfRandomWeights(cfg, 4, nil)
		tc.set(bad)
		if _, err := load16(t, bad, BF16, false); err == nil || !strings.Contains(err.Error(), tc.error) {
			t.Errorf("non-finite %s: got %v, want %q", tc.name, err, tc.error)
		}
	}

	w, err := load16(t, src, BF16, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Embedding = make([]float32, cfg.VocabSize*cfg.Dim)
	if err := w.Validate(); err == nil || !strings.Contains(err.Error(), "model.embed_tokens: held both") {
		t.Errorf("embedding held twice: got %v", err)
	}
	w.Embedding = nil
	small, err := quant.NewBF16(make([]uint16, 4*cfg.Dim), 4, cfg.Dim)
	if err != nil {
		t.Fatal(err)
	}
	w.EmbeddingMatrix = small
	if err := w.Validate(); err == nil || !strings.Contains(err.Error(), "model.embed_tokens: bf16 matrix is [4 16], want [32 16]") {
		t.Errorf("misshapen embedding matrix: got %v", err)
	}
	if err := w.EmbedToken(make([]float32, cfg.Dim), cfg.VocabSize); err == nil {
		t.Error("EmbedToken accepted a token outside the vocabulary")
	}
}

// TestWrite16BitEmbedding: a model loaded with a 16-bit embedding and head
// writes back (WriteHF) with exactly their values.
func TestWrite16BitEmbedding(t *testing.T) {
	src := hfRandomWeights(hfTestConfig(), 6, func(v float32) float32 { return half.BF16ToFloat32(half.Float32ToBF16(v)) })
	w, err := load16(t, src, BF16, false)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteHF(dir, w, F32); err != nil {
		t.Fatal(err)
	}
	back, err := loadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Embedding, src.Embedding) || !slices.Equal(back.Output.Dense, src.Output.Dense) {
		t.Fatal("WriteHF of the 16-bit embedding or head changed their values")
	}
}

// TestLoadGGUF16BitEmbedding: a GGUF file with F16 matrices (stories260K,
// tied) loaded with a quantizer keeps its embedding, which is the head, in
// F16 with the values of the float32 load.
func TestLoadGGUF16BitEmbedding(t *testing.T) {
	b, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := WriteGGUF(path, b, GGUFF16); err != nil {
		t.Fatal(err)
	}
	load := func(float32Embedding bool) *Weights {
		b, err := Load(context.Background(), path, LoadOptions{WeightsOnly: true, Quantizer: nf4.Quantizer(nf4.Options{}), Float32Embedding: float32Embedding})
		if err != nil {
			t.Fatal(err)
		}
		return b.Weights
	}
	w16, w32 := load(false), load(true)
	m, ok := w16.EmbeddingMatrix.(*quant.Half)
	if !ok || !m.IsF16() || w16.Output.Quantized != w16.EmbeddingMatrix || w32.EmbeddingMatrix != nil {
		t.Fatalf("embedding %T, head %T (float32 load: %T); want one F16 matrix", w16.EmbeddingMatrix, w16.Output.Quantized, w32.EmbeddingMatrix)
	}
	widened, err := w16.EmbeddingFloat32()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bitsOf(widened), bitsOf(w32.Embedding)) {
		t.Fatal("the F16 embedding widens to other values than the float32 load")
	}
}
