package ggml

import (
	"bytes"
	"encoding/binary"
	"flag"
	"os"
	"reflect"
	"testing"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/internal/half"
)

var storiesOut = flag.String("stories-q8_0", "", "also write golora's Q8_0 quantization of stories260K to this file (for llamaref logits)")

const (
	storiesF32      = "../../internal/gguf/testdata/stories260K.gguf"
	storiesLlamaQ80 = "testdata/stories260K.q8_0.llama.gguf"
)

// quantizeFileQ8_0 converts a GGUF model to Q8_0 by llama-quantize's rules
// for that type: matrices become Q8_0 where their rows are whole Q8_0 blocks
// and F16 where not (FallbackFor), vectors stay F32; the metadata is copied and gains
// general.quantization_version 2 and general.file_type 7 (MOSTLY_Q8_0).
func quantizeFileQ8_0(t *testing.T, f *gguf.File) []byte {
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
	add("general.file_type", uint32(7))
	for _, ti := range f.Tensors() {
		w, err := f.TensorFloat32(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		rows, cols, err := ti.RowsCols()
		if err != nil {
			t.Fatal(err)
		}
		typ, data := gguf.TypeF32, make([]byte, 4*len(w))
		qt, fits := FallbackFor(Q8_0, cols)
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

// TestStoriesQ8_0MatchesLlamaQuantize quantizes the real stories260K model to
// Q8_0 and compares it with the file llama.cpp's llama_model_quantize wrote
// from the same input (testdata/README.md): the same metadata in the same
// order, and every tensor with the same type, dims and bytes. Only the order
// of the tensors differs (llama-quantize moves output.weight first; ours
// keep the input's order), which GGUF readers do not depend on.
func TestStoriesQ8_0MatchesLlamaQuantize(t *testing.T) {
	in, err := gguf.Open(storiesF32)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	ours := quantizeFileQ8_0(t, in)
	if *storiesOut != "" {
		if err := os.WriteFile(*storiesOut, ours, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	theirs, err := os.ReadFile(storiesLlamaQ80)
	if err != nil {
		t.Fatal(err)
	}
	if len(ours) != len(theirs) {
		t.Errorf("file sizes: ours %d bytes, llama.cpp %d", len(ours), len(theirs))
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
		t.Errorf("metadata differs:\nours  %v\nllama %v", a.KVs(), b.KVs())
	}
	if len(a.Tensors()) != len(b.Tensors()) {
		t.Fatalf("ours has %d tensors, llama.cpp %d", len(a.Tensors()), len(b.Tensors()))
	}
	q8 := 0
	for _, tb := range b.Tensors() {
		ta, ok := a.Tensor(tb.Name)
		if !ok {
			t.Fatalf("tensor %q missing from ours", tb.Name)
		}
		ra, _ := a.TensorBytes(tb.Name)
		rb, _ := b.TensorBytes(tb.Name)
		if ta.Type != tb.Type || !reflect.DeepEqual(ta.Dims, tb.Dims) || !bytes.Equal(ra, rb) {
			t.Errorf("tensor %q: ours %v %v, llama.cpp %v %v; bytes equal %v", tb.Name, ta.Type, ta.Dims, tb.Type, tb.Dims, bytes.Equal(ra, rb))
		}
		if tb.Type == gguf.TypeQ8_0 {
			q8++
		}
	}
	if q8 != 32 {
		t.Errorf("llama.cpp's file has %d Q8_0 tensors, want 32 (the matrices with 64-wide rows: 6 per block and the two embeddings)", q8)
	}
}
