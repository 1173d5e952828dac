package tokenizer

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParseLlama2C(f *testing.F) {
	data, err := os.ReadFile("testdata/tok512.bin")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data, 512)
	f.Add(data, 100)
	// The first 300 pieces alone: a small valid file for quick mutation.
	off := 4
	for range 300 {
		off += 8 + int(binary.LittleEndian.Uint32(data[off+4:]))
	}
	f.Add(data[:off], 300)
	f.Fuzz(func(t *testing.T, data []byte, vocabSize int) {
		tok, err := ParseLlama2C(data, vocabSize)
		if err != nil {
			return
		}
		if tok.VocabSize() != vocabSize {
			t.Fatalf("VocabSize %d, want %d", tok.VocabSize(), vocabSize)
		}
		ids := tok.Encode("Once upon a time, 日本 😀\x00")
		for _, id := range ids {
			if id < 0 || id >= vocabSize {
				t.Fatalf("id %d outside the vocabulary", id)
			}
		}
		tok.Decode(ids)
		tok.Decode([]int{-1, 0, 1, 2, vocabSize - 1, vocabSize})
	})
}

// smallHF shrinks a real tokenizer.json to its first n vocabulary entries
// and the merges among them, a seed the fuzzer can mutate quickly.
func smallHF(f testing.TB, path string, n int) []byte {
	data := readMaybeGzip(f, path)
	var file map[string]any
	if err := json.Unmarshal(data, &file); err != nil {
		f.Fatal(err)
	}
	model := file["model"].(map[string]any)
	vocab := map[string]any{}
	for tok, id := range model["vocab"].(map[string]any) {
		if id.(float64) < float64(n) {
			vocab[tok] = id
		}
	}
	var merges []any
	for _, m := range model["merges"].([]any) {
		a, b, _ := strings.Cut(m.(string), " ")
		if vocab[a] != nil && vocab[b] != nil && vocab[a+b] != nil {
			merges = append(merges, m)
		}
	}
	var added []any
	for _, a := range file["added_tokens"].([]any) {
		if a.(map[string]any)["id"].(float64) < float64(n) {
			added = append(added, a)
		}
	}
	model["vocab"], model["merges"], file["added_tokens"] = vocab, merges, added
	out, err := json.Marshal(file)
	if err != nil {
		f.Fatal(err)
	}
	return out
}

func FuzzParseHF(f *testing.F) {
	for _, dir := range []string{"tinyllama", "smollm"} {
		path := "testdata/" + dir + "/tokenizer.json"
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(smallHF(f, path, 400))
	}
	// Llama-3 and Qwen2.5 (Split pre-tokenizer, NFC), shrunk: their full
	// files are megabytes.
	f.Add(smallHF(f, "testdata/llama3/tokenizer.json.gz", 400))
	f.Add(smallHF(f, "testdata/qwen2.5/tokenizer.json.gz", 400))
	f.Add([]byte(tinyHF))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := ParseHF(data)
		if err != nil {
			return
		}
		n := tok.VocabSize()
		ids := tok.Encode("Hello  world! <s>日本 😀\n\x00 1234 don't")
		for _, id := range ids {
			if id < 0 || id >= n {
				t.Fatalf("id %d outside the vocabulary of %d", id, n)
			}
		}
		tok.Decode(ids)
		tok.Decode([]int{-1, 0, n - 1, n})
		// The GGUF forms of what parses build again, or are refused.
		bpe := tok.(*BPE)
		if c, err := bpe.ByteLevelBPEConfig(n + 1); err == nil {
			if _, err := NewByteLevelBPE(c); err != nil {
				t.Fatalf("the GGUF form of a parsed tokenizer does not build: %v", err)
			}
		}
		if sp, err := bpe.SentencePiece(n); err == nil && sp.VocabSize() != n {
			t.Fatalf("SentencePiece form has %d pieces, want %d", sp.VocabSize(), n)
		}
	})
}

// FuzzRoundTrip checks Decode(Encode(s)) == s and streaming on the three
// real vocabularies, for any valid UTF-8 s free of each one's lossy
// characters.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"Once upon a time", " two  spaces ", "日本語 😀👍🏽", "\x00\t\n", "<s>x</s><|im_start|>", "don't 1234"} {
		f.Add(s)
	}
	toks := roundTripTokenizers(f)
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for _, tc := range toks {
			if strings.ContainsFunc(s, tc.lossy) {
				continue
			}
			ids := tc.tok.Encode(s)
			if got := tc.tok.Decode(ids); got != s {
				t.Fatalf("%s: Decode(Encode(%q)) = %q (ids %v)", tc.name, s, got, ids)
			}
			checkStream(t, tc.name, tc.tok, ids)
		}
	})
}

// FuzzNewByteLevelBPE builds tokenizers from fuzzed GGUF-style arrays (as
// JSON), seeded with the first tokens and merges of the real Llama-3 and
// Qwen2.5 vocabularies: a tokenizer or an error, never a panic, and ids in
// range.
func FuzzNewByteLevelBPE(f *testing.F) {
	for _, tc := range []struct{ path, pre string }{
		{"testdata/llama3/tokenizer.json.gz", "llama-bpe"},
		{"testdata/qwen2.5/tokenizer.json.gz", "qwen2"},
	} {
		tokens, types, merges := ggufArrays(f, smallHF(f, tc.path, 400))
		var keep []string
		for _, m := range merges {
			if len(keep) < 300 {
				keep = append(keep, m)
			}
		}
		seed, err := json.Marshal(ByteLevelBPEConfig{Tokens: tokens, Types: types, Merges: keep, Pre: tc.pre, BOS: 0, EOS: len(tokens) - 1, AddBOS: true})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(seed)
	}
	f.Add([]byte(`{"Tokens": ["a", "b", "ab", "<|x|>"], "Types": [1, 1, 1, 3], "Merges": ["a b"], "Pre": "smollm", "BOS": -1, "EOS": 3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c ByteLevelBPEConfig
		if json.Unmarshal(data, &c) != nil {
			return
		}
		tok, err := NewByteLevelBPE(c)
		if err != nil {
			return
		}
		n := tok.VocabSize()
		ids := tok.Encode("Hello  world! <|x|>日本 😀\n\x00 1234 DON'T ab")
		for _, id := range ids {
			if id < 0 || id >= n {
				t.Fatalf("id %d outside the vocabulary of %d", id, n)
			}
		}
		tok.Decode(ids)
		tok.Decode([]int{-1, 0, n - 1, n})
	})
}
