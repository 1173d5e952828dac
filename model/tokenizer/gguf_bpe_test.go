package tokenizer

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// readMaybeGzip reads path, gunzipping it when it ends in .gz.
func readMaybeGzip(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// ggufArrays rebuilds the tokenizer.ggml.* arrays that llama.cpp's
// converter writes for a byte-level BPE tokenizer.json: tokens by id, added
// special tokens as control (3), other added tokens as user-defined (4), and
// merges as "left right".
func ggufArrays(t testing.TB, tokenizerJSON []byte) (tokens []string, types []int32, merges []string) {
	t.Helper()
	var f struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Vocab  map[string]int    `json:"vocab"`
			Merges []json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(tokenizerJSON, &f); err != nil {
		t.Fatal(err)
	}
	n := len(f.Model.Vocab)
	for _, a := range f.AddedTokens {
		n = max(n, a.ID+1)
	}
	tokens = make([]string, n)
	types = make([]int32, n)
	for i := range types {
		types[i] = ggufTokenUnused
	}
	for tok, id := range f.Model.Vocab {
		tokens[id], types[id] = tok, ggufTokenNormal
	}
	for _, a := range f.AddedTokens {
		tokens[a.ID], types[a.ID] = a.Content, ggufTokenUserDefined
		if a.Special {
			types[a.ID] = ggufTokenControl
		}
	}
	for _, raw := range f.Model.Merges {
		var line string
		var pair []string
		switch {
		case json.Unmarshal(raw, &line) == nil:
			merges = append(merges, line)
		case json.Unmarshal(raw, &pair) == nil && len(pair) == 2:
			merges = append(merges, pair[0]+" "+pair[1])
		default:
			t.Fatalf("merge %s", raw)
		}
	}
	return tokens, types, merges
}

type byteLevelGolden struct {
	Strings []string           `json:"strings"`
	IDs     map[string][][]int `json:"ids"`
}

func loadByteLevelGolden(t testing.TB) byteLevelGolden {
	t.Helper()
	var g byteLevelGolden
	if err := json.Unmarshal(readMaybeGzip(t, "testdata/golden_byte_level_bpe.json"), &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestByteLevelBPEGolden compares Encode with the ids of Hugging Face
// tokenizers (see testdata/README.md) on 399 strings, for the tokenizer built
// from GGUF-style arrays and for the same tokenizer.json loaded directly.
func TestByteLevelBPEGolden(t *testing.T) {
	g := loadByteLevelGolden(t)
	for _, tc := range []struct {
		golden, path, pre string
		bos, eos          string
		addBOS            bool
	}{
		{"llama-3.2", "testdata/llama3/tokenizer.json.gz", "llama-bpe", "<|begin_of_text|>", "<|eot_id|>", true},
		{"qwen2.5", "testdata/qwen2.5/tokenizer.json.gz", "qwen2", "<|endoftext|>", "<|im_end|>", false},
		{"smollm", "testdata/smollm/tokenizer.json", "smollm", "<|im_start|>", "<|im_end|>", false},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			data := readMaybeGzip(t, tc.path)
			tokens, types, merges := ggufArrays(t, data)
			bos, eos := slices.Index(tokens, tc.bos), slices.Index(tokens, tc.eos)
			gguf, err := NewByteLevelBPE(ByteLevelBPEConfig{Tokens: tokens, Types: types, Merges: merges, Pre: tc.pre, BOS: bos, EOS: eos, AddBOS: tc.addBOS})
			if err != nil {
				t.Fatal(err)
			}
			wantBOS := -1
			if tc.addBOS {
				wantBOS = bos
			}
			if gguf.BOS() != wantBOS || gguf.EOS() != eos || gguf.VocabSize() != len(tokens) {
				t.Errorf("BOS %d EOS %d VocabSize %d, want %d %d %d", gguf.BOS(), gguf.EOS(), gguf.VocabSize(), wantBOS, eos, len(tokens))
			}
			hf, err := ParseHF(data)
			if err != nil {
				t.Fatal(err)
			}
			want := g.IDs[tc.golden]
			if len(want) != len(g.Strings) {
				t.Fatalf("golden has %d id lists for %d strings", len(want), len(g.Strings))
			}
			bad := 0
			for i, s := range g.Strings {
				for name, tok := range map[string]Tokenizer{"gguf": gguf, "tokenizer.json": hf} {
					got := tok.Encode(s)
					if !slices.Equal(got, want[i]) && !(len(got) == 0 && len(want[i]) == 0) {
						bad++
						if bad <= 10 {
							t.Errorf("%s: Encode(%q) = %v, want %v", name, s, got, want[i])
						}
					}
				}
				if got, want := gguf.Decode(want[i]), norm.NFC.String(s); tc.golden == "qwen2.5" && got != want {
					t.Errorf("Decode(golden ids of %q) = %q, want %q", s, got, want)
				} else if tc.golden == "llama-3.2" && got != s {
					t.Errorf("Decode(golden ids of %q) = %q", s, got)
				}
			}
			if bad > 0 {
				t.Errorf("%d mismatches", bad)
			}
		})
	}
}

func TestNewByteLevelBPEErrors(t *testing.T) {
	base := ByteLevelBPEConfig{Tokens: []string{"a", "b", "ab", "<|x|>"}, Types: []int32{1, 1, 1, 3}, Merges: []string{"a b"}, Pre: "gpt-2", BOS: 3, EOS: 3}
	if tok, err := NewByteLevelBPE(base); err != nil {
		t.Fatal(err)
	} else if got := tok.Encode("ab<|x|>ba"); !slices.Equal(got, []int{2, 3, 1, 0}) {
		t.Errorf("Encode = %v", got)
	}
	for _, tc := range []struct {
		name string
		edit func(*ByteLevelBPEConfig)
		want string
	}{
		{"unknown pre", func(c *ByteLevelBPEConfig) { c.Pre = "gemma4" }, `tokenizer.ggml.pre "gemma4" is not supported`},
		{"no pre", func(c *ByteLevelBPEConfig) { c.Pre = "" }, "tokenizer.ggml.pre is missing"},
		{"no tokens", func(c *ByteLevelBPEConfig) { c.Tokens, c.Types = nil, nil }, "tokenizer.ggml.tokens is empty"},
		{"types length", func(c *ByteLevelBPEConfig) { c.Types = c.Types[:2] }, "token_type has 2 entries for 4 tokens"},
		{"bad type", func(c *ByteLevelBPEConfig) { c.Types = []int32{1, 1, 9, 3} }, `tokens[2] ("ab"): token type 9`},
		{"duplicate", func(c *ByteLevelBPEConfig) { c.Tokens = []string{"a", "a", "ab", "<|x|>"} }, `tokens[1] ("a"): same text as token 0`},
		{"bad merge", func(c *ByteLevelBPEConfig) { c.Merges = []string{"a c"} }, `merges[0]: "c" is not in the vocabulary`},
		{"merge shape", func(c *ByteLevelBPEConfig) { c.Merges = []string{"ab"} }, `merges[0] "ab": want two tokens`},
		{"bos range", func(c *ByteLevelBPEConfig) { c.BOS = 4 }, "bos_token_id 4 is outside the 4 tokens"},
	} {
		c := base
		c.Types = slices.Clone(base.Types)
		tc.edit(&c)
		_, err := NewByteLevelBPE(c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestLlama3SplitPieces(t *testing.T) {
	for _, tc := range []struct {
		in        string
		maxDigits int
		want      []string
	}{
		{"Hello world", 3, []string{"Hello", " world"}},
		{"I'M 12345 ok", 3, []string{"I", "'M", " ", "123", "45", " ok"}},
		{"I'M 12345 ok", 1, []string{"I", "'M", " ", "1", "2", "3", "4", "5", " ok"}},
		{"a  \n  b", 3, []string{"a", "  \n", " ", " b"}},
		{"x\t\ty", 3, []string{"x", "\t", "\ty"}},
		{"...\n\nz !?\r\n", 3, []string{"...\n\n", "z", " !?\r\n"}},
		{"end  ", 3, []string{"end", "  "}},
		{"(hi)", 3, []string{"(hi", ")"}},
	} {
		var got []string
		llama3Split(tc.in, tc.maxDigits, func(w string) { got = append(got, w) })
		if !slices.Equal(got, tc.want) {
			t.Errorf("llama3Split(%q, %d) = %q, want %q", tc.in, tc.maxDigits, got, tc.want)
		}
	}
}

// BenchmarkEncodeByteLevel encodes benchText with the tokenizers built from
// GGUF-style arrays (Llama-3's hand-written Split, Qwen2's with NFC) next to
// SmolLM's tokenizer.json (the GPT-2 split), in one run.
func BenchmarkEncodeByteLevel(b *testing.B) {
	build := func(path, pre string) Tokenizer {
		tokens, types, merges := ggufArrays(b, readMaybeGzip(b, path))
		tok, err := NewByteLevelBPE(ByteLevelBPEConfig{Tokens: tokens, Types: types, Merges: merges, Pre: pre, BOS: -1, EOS: -1})
		if err != nil {
			b.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		name string
		tok  Tokenizer
	}{
		{"llama-3.2-gguf", build("testdata/llama3/tokenizer.json.gz", "llama-bpe")},
		{"qwen2.5-gguf", build("testdata/qwen2.5/tokenizer.json.gz", "qwen2")},
		{"smollm-json", loadHF(b, "smollm")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(benchText)))
			n := 0
			for b.Loop() {
				n += len(tc.tok.Encode(benchText))
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// TestByteLevelBPEConfigRoundTrip: the GGUF metadata ByteLevelBPEConfig
// derives from a tokenizer.json is the one llama.cpp's converter writes
// (ggufArrays, built from the JSON directly; the pre-tokenizer names its
// convert_hf_to_gguf_update.py gives these models), plus unused padding up to
// the requested vocabulary, and the tokenizer NewByteLevelBPE builds from it
// encodes the golden strings as Hugging Face does and exports the same
// metadata again.
func TestByteLevelBPEConfigRoundTrip(t *testing.T) {
	g := loadByteLevelGolden(t)
	for _, tc := range []struct {
		golden, path, pre string
		pad               int
	}{
		{"llama-3.2", "testdata/llama3/tokenizer.json.gz", "llama-bpe", 0},
		{"qwen2.5", "testdata/qwen2.5/tokenizer.json.gz", "qwen2", 3},
		{"smollm", "testdata/smollm/tokenizer.json", "smollm", 0},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			data := readMaybeGzip(t, tc.path)
			tokens, types, merges := ggufArrays(t, data)
			hf, err := ParseHF(data)
			if err != nil {
				t.Fatal(err)
			}
			bpe := hf.(*BPE)
			c, err := bpe.ByteLevelBPEConfig(len(tokens) + tc.pad)
			if err != nil {
				t.Fatal(err)
			}
			if c.Pre != tc.pre {
				t.Errorf("pre %q, want %q", c.Pre, tc.pre)
			}
			if !slices.Equal(c.Tokens[:len(tokens)], tokens) || !slices.Equal(c.Types[:len(types)], types) {
				t.Error("tokens or types differ from the converter's")
			}
			for i := len(tokens); i < len(c.Tokens); i++ {
				if c.Types[i] != ggufTokenUnused {
					t.Errorf("padding token %d %q has type %d", i, c.Tokens[i], c.Types[i])
				}
			}
			if !slices.Equal(c.Merges, merges) {
				t.Errorf("%d merges, the converter's %d", len(c.Merges), len(merges))
			}
			if c.BOS != bpe.BOS() || c.EOS != bpe.EOS() || c.AddBOS != (bpe.BOS() >= 0) {
				t.Errorf("BOS %d EOS %d AddBOS %t; the tokenizer's BOS %d EOS %d", c.BOS, c.EOS, c.AddBOS, bpe.BOS(), bpe.EOS())
			}
			back, err := NewByteLevelBPE(c)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range g.Strings {
				if got, want := back.Encode(s), g.IDs[tc.golden][i]; !slices.Equal(got, want) && len(got)+len(want) > 0 {
					t.Fatalf("Encode(%q) = %v, want %v", s, got, want)
				}
			}
			again, err := back.ByteLevelBPEConfig(len(c.Tokens))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again, c) {
				t.Error("the config of the rebuilt tokenizer differs")
			}
		})
	}
	// A Llama-2 (byte-fallback) vocabulary is not byte-level.
	llama2, err := LoadHF("testdata/tinyllama/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := llama2.(*BPE).ByteLevelBPEConfig(llama2.VocabSize()); err == nil {
		t.Error("a byte-fallback vocabulary exported as gpt2")
	}
}

// TestBPESentencePieceGolden: TinyLlama's tokenizer.json (Llama 2's
// vocabulary) in its SentencePiece form encodes the golden strings as
// Hugging Face tokenizers encodes them with the tokenizer.json, except the
// 5 that spell <s> or </s>, which SentencePiece (like llama.cpp's tokenizer
// without parse_special) reads as text.
func TestBPESentencePieceGolden(t *testing.T) {
	hf := loadHF(t, "tinyllama")
	sp, err := hf.SentencePiece(hf.VocabSize())
	if err != nil {
		t.Fatal(err)
	}
	if sp.BOS() != hf.BOS() || sp.EOS() != hf.EOS() || sp.VocabSize() != hf.VocabSize() {
		t.Errorf("BOS %d EOS %d size %d; tokenizer.json's %d %d %d", sp.BOS(), sp.EOS(), sp.VocabSize(), hf.BOS(), hf.EOS(), hf.VocabSize())
	}
	g := readHFGolden(t, "testdata/golden_tinyllama.json")
	bad, skipped := 0, 0
	for _, c := range g.Variants["base"].Cases {
		if strings.Contains(c.Text, "<s>") || strings.Contains(c.Text, "</s>") {
			skipped++ // SentencePiece reads control pieces in text as text
			continue
		}
		if got := sp.Encode(c.Text); !slices.Equal(got, c.IDs) {
			if bad++; bad <= 10 {
				t.Errorf("Encode(%q) = %v, want %v", c.Text, got, c.IDs)
			}
		}
	}
	if bad > 0 || skipped > 5 {
		t.Errorf("%d of %d strings differ, %d skipped", bad, len(g.Variants["base"].Cases), skipped)
	}
	if _, err := loadHF(t, "smollm").SentencePiece(49152); err == nil {
		t.Error("a byte-level vocabulary converted to SentencePiece")
	}
}

// TestByteLevelBPEConfigRefusesSpaces: a byte-level tokenizer.json whose
// merged tokens hold a raw space has no GGUF form (GGUF merges are
// space-separated pairs).
func TestByteLevelBPEConfigRefusesSpaces(t *testing.T) {
	tok, err := ParseHF([]byte(`{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
		"decoder": {"type": "ByteLevel"},
		"model": {"type": "BPE", "vocab": {"a": 0, " ": 1, "a ": 2, "b": 3}, "merges": [["a", " "]]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.(*BPE).ByteLevelBPEConfig(4); err == nil || !strings.Contains(err.Error(), "space") {
		t.Errorf("err %v", err)
	}
}

// BenchmarkNewByteLevelBPE builds Llama-3.2's tokenizer (128,256 tokens,
// 280,147 merges) from its GGUF arrays, which a GGUF load does alongside
// the weights.
func BenchmarkNewByteLevelBPE(b *testing.B) {
	tokens, types, merges := ggufArrays(b, readMaybeGzip(b, "testdata/llama3/tokenizer.json.gz"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewByteLevelBPE(ByteLevelBPEConfig{Tokens: tokens, Types: types, Merges: merges, Pre: "llama-bpe", BOS: -1, EOS: -1}); err != nil {
			b.Fatal(err)
		}
	}
}
