package ggml

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/internal/half"
)

var (
	storiesOut = flag.String("stories-q8_0", "", "also write golora's Q8_0 quantization of stories260K to this file (for llamaref logits)")
	tinyOut    = flag.String("tiny-out", "", "also write the random tiny model (F32) and golora's pure Q4_K quantization of it to this path prefix (for llamaref)")
)

const (
	storiesF32      = "../../internal/gguf/testdata/stories260K.gguf"
	storiesLlamaQ80 = "testdata/stories260K.q8_0.llama.gguf"

	// tinyLlamaQ4KSHA256 is the SHA-256 of the file llama.cpp's
	// llama_model_quantize wrote from the random tiny model with ftype
	// MOSTLY_Q4_K_M and pure set (testdata/README.md).
	tinyLlamaQ4KSHA256 = "bbeb48c32a43eff27f26b430543a00140158ed72b0ae16195ec4dfe8d58c9489"
)

// llamaFileTypes are llama.cpp's general.file_type values (llama.h,
// LLAMA_FTYPE_MOSTLY_*) for the targets the tests convert to.
var llamaFileTypes = map[Type]uint32{Q8_0: 7, Q4_K: 15}

// convertFile converts a float GGUF model the way llama-quantize does for a
// single target type (its rules for Q8_0; for Q4_K its "pure" mode, which
// does not mix in other types): matrices become target, or FallbackFor's type
// where their rows do not fit its blocks, or F16 where nothing fits; vectors
// stay F32. The metadata is copied and gains general.quantization_version 2
// and general.file_type; tensors are written in llama-quantize's order
// (non-layer tensors first, then by layer number, then by name).
func convertFile(t *testing.T, f *gguf.File, target Type) []byte {
	var b gguf.Builder
	add := func(key string, v any) {
		if err := b.AddKV(key, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, kv := range f.KVs() {
		if kv.Key != "general.quantization_version" && kv.Key != "general.file_type" {
			add(kv.Key, kv.Value)
		}
	}
	add("general.quantization_version", uint32(2))
	add("general.file_type", llamaFileTypes[target])
	tensors := f.Tensors()
	slices.SortStableFunc(tensors, func(a, b gguf.TensorInfo) int { return gguf.CompareTensorNames(a.Name, b.Name) })
	for _, ti := range tensors {
		w, err := f.TensorFloat32(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		rows, cols, err := ti.RowsCols()
		if err != nil {
			t.Fatal(err)
		}
		typ, data := gguf.TypeF32, make([]byte, 4*len(w))
		qt, fits := FallbackFor(target, cols)
		switch {
		case len(ti.Dims) >= 2 && fits:
			m, err := Quantize(qt, w, rows, cols)
			if err != nil {
				t.Fatal(err)
			}
			typ, data = gguf.GGMLType(qt), m.Blocks()
		case len(ti.Dims) >= 2:
			typ, data = gguf.TypeF16, make([]byte, 2*len(w))
			for i, v := range w {
				binary.LittleEndian.PutUint16(data[2*i:], half.Float32ToF16(v))
			}
		default:
			if _, err := binary.Encode(data, binary.LittleEndian, w); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.AddTensor(ti.Name, typ, ti.Dims, data); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestStoriesQ8_0MatchesLlamaQuantize converts the real stories260K model to
// Q8_0 and compares the result, byte for byte, with the file llama.cpp's
// llama_model_quantize wrote from the same input (testdata/README.md). On a
// mismatch it names the first metadata key or tensor that differs.
func TestStoriesQ8_0MatchesLlamaQuantize(t *testing.T) {
	in, err := gguf.Open(storiesF32)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	ours := convertFile(t, in, Q8_0)
	if *storiesOut != "" {
		if err := os.WriteFile(*storiesOut, ours, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	theirs, err := os.ReadFile(storiesLlamaQ80)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ours, theirs) {
		return
	}
	a, err := gguf.Parse(ours)
	if err != nil {
		t.Fatal(err)
	}
	b, err := gguf.Parse(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.KVs(), b.KVs()) {
		t.Fatalf("metadata differs:\nours  %v\nllama %v", a.KVs(), b.KVs())
	}
	for i, tb := range b.Tensors() {
		ta := a.Tensors()[i]
		ra, _ := a.TensorBytes(ta.Name)
		rb, _ := b.TensorBytes(tb.Name)
		if ta.Name != tb.Name || ta.Type != tb.Type || !reflect.DeepEqual(ta.Dims, tb.Dims) || !bytes.Equal(ra, rb) {
			t.Fatalf("tensor %d: ours %q %v %v, llama.cpp %q %v %v; bytes equal %v", i, ta.Name, ta.Type, ta.Dims, tb.Name, tb.Type, tb.Dims, bytes.Equal(ra, rb))
		}
	}
	t.Fatalf("files differ (ours %d bytes, llama.cpp %d) though metadata and tensors agree", len(ours), len(theirs))
}

// tinyModel builds a random LLaMA model whose matrices all have rows of 256
// (so K-quants apply without fallback): hidden 256, FFN 512, 2 layers, 4
// heads, stories260K's 512-token vocabulary and tokenizer, seeded weights.
func tinyModel(t *testing.T) []byte {
	src, err := gguf.Open(storiesF32)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	const hidden, ffn, layers, heads, vocab = 256, 512, 2, 4, 512
	override := map[string]any{
		"general.name":                  "golora-tiny-random",
		"llama.context_length":          uint32(256),
		"llama.embedding_length":        uint32(hidden),
		"llama.feed_forward_length":     uint32(ffn),
		"llama.attention.head_count":    uint32(heads),
		"llama.attention.head_count_kv": uint32(heads),
		"llama.block_count":             uint32(layers),
		"llama.rope.dimension_count":    uint32(hidden / heads),
	}
	var b gguf.Builder
	for _, kv := range src.KVs() {
		v := any(kv.Value)
		if o, ok := override[kv.Key]; ok {
			v = o
		}
		if err := b.AddKV(kv.Key, v); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(2026, 12))
	matrix := func(name string, rows, cols int) {
		w := make([]float32, rows*cols)
		for i := range w {
			w[i] = float32(r.NormFloat64() * 0.08)
		}
		if err := b.AddFloat32(name, []int{rows, cols}, w); err != nil {
			t.Fatal(err)
		}
	}
	ones := func(name string) {
		w := make([]float32, hidden)
		for i := range w {
			w[i] = 1 + float32(r.NormFloat64()*0.1)
		}
		if err := b.AddFloat32(name, []int{hidden}, w); err != nil {
			t.Fatal(err)
		}
	}
	matrix("token_embd.weight", vocab, hidden)
	ones("output_norm.weight")
	matrix("output.weight", vocab, hidden)
	for l := range layers {
		p := "blk." + string(rune('0'+l)) + "."
		ones(p + "attn_norm.weight")
		matrix(p+"attn_q.weight", hidden, hidden)
		matrix(p+"attn_k.weight", hidden, hidden)
		matrix(p+"attn_v.weight", hidden, hidden)
		matrix(p+"attn_output.weight", hidden, hidden)
		ones(p + "ffn_norm.weight")
		matrix(p+"ffn_gate.weight", ffn, hidden)
		matrix(p+"ffn_up.weight", ffn, hidden)
		matrix(p+"ffn_down.weight", hidden, ffn)
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestTinyQ4_KMatchesLlamaQuantize converts a random model with 256-wide rows
// to Q4_K and checks that the file is the one llama.cpp wrote from the same
// input: its SHA-256 is the hash of llama.cpp's output.
func TestTinyQ4_KMatchesLlamaQuantize(t *testing.T) {
	if testing.Short() {
		t.Skip("quantizes 1.4M weights")
	}
	model := tinyModel(t)
	in, err := gguf.Parse(model)
	if err != nil {
		t.Fatal(err)
	}
	ours := convertFile(t, in, Q4_K)
	if *tinyOut != "" {
		if err := os.WriteFile(*tinyOut+".f32.gguf", model, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*tinyOut+".q4_K.golora.gguf", ours, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256(ours)
	if got := hex.EncodeToString(sum[:]); got != tinyLlamaQ4KSHA256 {
		t.Fatalf("SHA-256 of our Q4_K file %s, llama.cpp's %s", got, tinyLlamaQ4KSHA256)
	}
}
