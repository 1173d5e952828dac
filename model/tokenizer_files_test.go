package model

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/model/tokenizer"
)

// The tokenizer.bin WriteTokenizer writes for each kind of SentencePiece
// source is llama2.c's own tok512.bin, byte for byte: for the GGUF source
// that checks the conversion from llama.cpp's spelling (U+2581 spaces, BOS
// "<s>") against the file llama2.c exported from the same SentencePiece model.
func TestWriteTokenizerLlama2C(t *testing.T) {
	want, err := os.ReadFile("stories260k/tok512.bin")
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	fromBin, err := Load(context.Background(), stories260KBinPath, LoadOptions{TokenizerPath: "stories260k/tok512.bin"})
	if err != nil {
		t.Fatal(err)
	}
	fromGGUF, err := Load(context.Background(), stories260KGGUFPath, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range []*Base{embedded, fromBin, fromGGUF} {
		t.Run(ck.Format, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "new")
			if err := ck.WriteTokenizer(dir); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, "tokenizer.bin"))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("tokenizer.bin (%d bytes) differs from tok512.bin (%d bytes)", len(got), len(want))
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("dir holds %d entries, want only tokenizer.bin", len(entries))
			}
		})
	}
}

// A checkpoint written with WriteHF and WriteTokenizer loads back with Load,
// the directory's tokenizer.bin standing in for a tokenizer.json.
func TestWriteTokenizerRoundTrip(t *testing.T) {
	ck, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ck.WriteTokenizer(dir); err != nil {
		t.Fatal(err)
	}
	if err := WriteHF(dir, ck.Weights, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	back, err := Load(context.Background(), dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Format != "hf" {
		t.Errorf("format %q, want hf", back.Format)
	}
	assertSameWeights(t, ck.Weights, back.Weights, true)
	// Golden ids from llama2.c's documentation (see the fixtures README).
	if got := back.Tokenizer.Encode("Once upon a time"); !slices.Equal(got, []int{403, 407, 261, 378}) {
		t.Errorf("Encode = %v, want [403 407 261 378]", got)
	}
	if back.Tokenizer.BOS() != 1 || back.Tokenizer.EOS() != 2 || back.Tokenizer.VocabSize() != 512 {
		t.Errorf("BOS %d, EOS %d, vocabulary %d; want 1, 2, 512", back.Tokenizer.BOS(), back.Tokenizer.EOS(), back.Tokenizer.VocabSize())
	}

	// An explicit .bin TokenizerPath works for a Hugging Face directory too.
	if err := os.Remove(filepath.Join(dir, "tokenizer.bin")); err != nil {
		t.Fatal(err)
	}
	_, err = Load(context.Background(), dir, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "holds neither tokenizer.json nor tokenizer.bin") {
		t.Errorf("Load without a tokenizer: err = %v", err)
	}
	back, err = Load(context.Background(), dir, LoadOptions{TokenizerPath: "stories260k/tok512.bin"})
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Tokenizer.Encode("Once upon a time"); !slices.Equal(got, []int{403, 407, 261, 378}) {
		t.Errorf("Encode = %v with TokenizerPath tok512.bin", got)
	}
}

// tinyTokenizerJSON is a small Llama-style tokenizer.json, written for these
// tests.
const tinyTokenizerJSON = `{
  "added_tokens": [{"id": 0, "content": "<s>", "special": true, "normalized": false},
                   {"id": 1, "content": "</s>", "special": true, "normalized": false}],
  "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
  "pre_tokenizer": null,
  "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "byte_fallback": true, "vocab": {"<s>": 0, "</s>": 1, "▁": 2, "a": 3, "b": 4, "▁a": 5, "▁ab": 6, "<0x0A>": 7}, "merges": ["▁ a", ["▁a", "b"]]}
}`

// writeHFTestCheckpoint writes a small Hugging Face checkpoint with the tiny
// tokenizer, and tokenizer_config.json if config is not empty.
func writeHFTestCheckpoint(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	if err := WriteHF(dir, hfRandomWeights(hfTestConfig(), 21, nil), safetensors.F32); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(tinyTokenizerJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	if config != "" {
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestWriteTokenizerHF(t *testing.T) {
	// tokenizer_config.json swaps BOS and EOS relative to what ParseHF
	// guesses from the vocabulary, so a lost config would show.
	const config = `{"bos_token": "</s>", "eos_token": "<s>"}`
	src := writeHFTestCheckpoint(t, config)
	ck, err := Load(context.Background(), src, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ck.Tokenizer.BOS() != 1 || ck.Tokenizer.EOS() != 0 {
		t.Fatalf("test setup: BOS %d, EOS %d; want 1, 0 from tokenizer_config.json", ck.Tokenizer.BOS(), ck.Tokenizer.EOS())
	}
	out := t.TempDir()
	if err := ck.WriteTokenizer(out); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"tokenizer.json": tinyTokenizerJSON, "tokenizer_config.json": config} {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s differs from the source's", name)
		}
	}
	if err := WriteHF(out, ck.Weights, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	back, err := Load(context.Background(), out, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Tokenizer.BOS() != 1 || back.Tokenizer.EOS() != 0 || !slices.Equal(back.Tokenizer.Encode("ab ab\n"), ck.Tokenizer.Encode("ab ab\n")) {
		t.Error("the written tokenizer loads differently")
	}

	// Without a tokenizer_config.json, a stale one in the output directory
	// would change BOS and EOS: refused.
	src = writeHFTestCheckpoint(t, "")
	ck, err = Load(context.Background(), src, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = ck.WriteTokenizer(out)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(out, "tokenizer_config.json")+" already exists") {
		t.Fatalf("err = %v, want the stale tokenizer_config.json named", err)
	}
	fresh := t.TempDir()
	if err := ck.WriteTokenizer(fresh); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(fresh); len(entries) != 1 {
		t.Errorf("wrote %d files, want only tokenizer.json", len(entries))
	}
}

func TestWriteTokenizerErrors(t *testing.T) {
	// A tokenizer.bin next to a tokenizer.json would be ignored by Load.
	ck, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = ck.WriteTokenizer(dir)
	if err == nil || !strings.Contains(err.Error(), "tokenizer.json already exists and Load would read it instead of tokenizer.bin") {
		t.Errorf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.bin")); err == nil {
		t.Error("tokenizer.bin written despite the error")
	}

	// A BPE tokenizer that did not come from files cannot be written, even
	// on a checkpoint that was loaded with one.
	src := writeHFTestCheckpoint(t, "")
	hf, err := Load(context.Background(), src, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hf.Tokenizer, err = tokenizer.ParseHF([]byte(tinyTokenizerJSON))
	if err != nil {
		t.Fatal(err)
	}
	err = hf.WriteTokenizer(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "*tokenizer.BPE cannot be written") {
		t.Errorf("err = %v", err)
	}

	// llama2.c's format holds exactly the model's vocabulary.
	ck.Weights.Config.VocabSize = 600
	err = ck.WriteTokenizer(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "the tokenizer has 512 pieces but the model's vocabulary 600") {
		t.Errorf("err = %v", err)
	}
	if err := (&Base{}).WriteTokenizer(t.TempDir()); err == nil {
		t.Error("a checkpoint without a tokenizer was written")
	}
}
