package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tinyHF is a small, valid Llama-style tokenizer.json; the cases below break
// it one field at a time.
const tinyHF = `{
  "added_tokens": [{"id": 0, "content": "<s>", "special": true, "normalized": false}],
  "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
  "pre_tokenizer": null,
  "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "byte_fallback": true, "vocab": {"<s>": 0, "▁": 1, "a": 2, "b": 3, "▁a": 4, "▁ab": 5, "<0x0A>": 6}, "merges": ["▁ a", ["▁a", "b"]]}
}`

func TestHFTiny(t *testing.T) {
	tok, err := ParseHF([]byte(tinyHF))
	if err != nil {
		t.Fatal(err)
	}
	// Hand-worked: "ab ab" -> "▁ab▁ab" -> chars ▁ a b ▁ a b; rank 0 merges
	// both "▁ a" pairs (leftmost first), rank 1 then merges "▁a b" twice.
	if got, want := tok.Encode("ab ab"), []int{5, 5}; !slices.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
	// "<s>" is cut out before normalization; "\n" has no token and falls
	// back to <0x0A>.
	if got, want := tok.Encode("<s>a\n"), []int{0, 4, 6}; !slices.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
	if got := tok.Decode([]int{0, 4, 6}); got != "<s>a\n" {
		t.Errorf("Decode = %q", got)
	}
	if tok.BOS() != 0 || tok.EOS() != -1 || tok.VocabSize() != 7 {
		t.Errorf("BOS %d EOS %d VocabSize %d", tok.BOS(), tok.EOS(), tok.VocabSize())
	}
}

func TestParseHFErrors(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"not json", `{`, `[`, "not a tokenizer.json"},
		{"wordpiece", `"type": "BPE"`, `"type": "WordPiece"`, `model type "WordPiece" is not supported`},
		{"unigram", `"type": "BPE"`, `"type": "Unigram"`, `model type "Unigram" is not supported`},
		{"vocab type", `"vocab": {"<s>": 0,`, `"vocab": {"<s>": "zero",`, "model:"},
		{"no vocab", `"vocab"`, `"vocabulary"`, "model.vocab is missing"},
		{"vocab id", `"b": 3`, `"b": 99`, `"b" has id 99`},
		{"dup id", `"b": 3`, `"b": 2`, "id 2 is used by both"},
		{"merge unknown", `"▁ a"`, `"▁ z"`, `model.merges[0]: "z" is not in the vocabulary`},
		{"merge result", `["▁a", "b"]`, `["a", "b"]`, `merged token "ab" is not in the vocabulary`},
		{"merge form", `"▁ a"`, `"▁a"`, "want two tokens separated by one space"},
		{"merge type", `"▁ a"`, `7`, "model.merges[0]: want"},
		{"merge pair", `["▁a", "b"]`, `["▁a", "b", "c"]`, "want a pair of tokens, got 3"},
		{"normalizer", `"type": "Prepend", "prepend": "▁"`, `"type": "NFKC"`, `normalizer.normalizers[0]: normalizer type "NFKC" is not supported`},
		{"regex replace", `"pattern": {"String": " "}`, `"pattern": {"Regex": "\\s"}`, "Regex pattern"},
		{"pre-tokenizer", `"pre_tokenizer": null`, `"pre_tokenizer": {"type": "Whitespace"}`, `pre-tokenizer type "Whitespace" is not supported`},
		{"split pattern", `"pre_tokenizer": null`, `"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "x"}, "behavior": "Isolated"}`, `Split pattern "x" is not supported`},
		{"split behavior", `"pre_tokenizer": null`, `"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "x"}, "behavior": "Removed"}`, `Split with behavior "Removed"`},
		{"split string", `"pre_tokenizer": null`, `"pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "Isolated"}`, "Split needs a pattern.Regex"},
		{"normalizer", `"type": "Prepend"`, `"type": "NFKC"`, `normalizer type "NFKC" is not supported`},
		{"decoder", `"type": "Sequence", "decoders"`, `"type": "CTC", "decoders"`, `decoder type "CTC" is not supported`},
		{"no decoder", `"decoder": {`, `"decoder": null, "x": {`, "no decoder"},
		{"bytelevel mismatch", `"pre_tokenizer": null`, `"pre_tokenizer": {"type": "ByteLevel"}`, "ByteLevel must be in both"},
		{"added id", `{"id": 0, "content": "<s>"`, `{"id": 50, "content": "<s>"`, "added_tokens[0] (\"<s>\"): id 50"},
		{"added clash", `{"id": 0, "content": "<s>"`, `{"id": 1, "content": "<s>"`, `id 1 is "<s>", but the vocabulary has "▁"`},
		{"added missing", `{"id": 0, "content": "<s>",`, `{"id": 0,`, "needs both id and content"},
		{"added type", `"special": true`, `"special": "yes"`, "not a tokenizer.json"},
		{"unk", `"byte_fallback": true`, `"unk_token": "<unk>"`, `unk_token "<unk>" is not in the vocabulary`},
		{"suffix", `"byte_fallback": true`, `"end_of_word_suffix": "</w>"`, "end_of_word_suffix"},
		{"metaspace", `"pre_tokenizer": null`, `"pre_tokenizer": {"type": "Metaspace", "replacement": "ab"}`, "one-character replacement"},
		{"prepend scheme", `"pre_tokenizer": null`, `"pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "sometimes"}`, `prepend_scheme "sometimes"`},
		{"strip", `"start": 1`, `"start": 2`, "Strip"},
	} {
		if !strings.Contains(tinyHF, tc.old) {
			t.Fatalf("%s: %q not in tinyHF", tc.name, tc.old)
		}
		data := strings.Replace(tinyHF, tc.old, tc.new, 1)
		_, err := ParseHF([]byte(data))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "tokenizer.json") {
			t.Errorf("%s: error %v, want it to name tokenizer.json and mention %q", tc.name, err, tc.want)
		}
	}
}

func TestLoadHFErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(path, []byte(strings.Replace(tinyHF, `"type": "BPE"`, `"type": "WordLevel"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadHF(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "WordLevel") {
		t.Errorf("error %v, want the path and the model type", err)
	}
	if err := os.WriteFile(path, []byte(tinyHF), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "tokenizer_config.json")
	if err := os.WriteFile(cfg, []byte(`{"bos_token": "<missing>"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadHF(path)
	if err == nil || !strings.Contains(err.Error(), cfg) || !strings.Contains(err.Error(), `bos_token "<missing>"`) {
		t.Errorf("error %v, want the config path and the token", err)
	}
	if _, err := LoadHF(filepath.Join(dir, "nope.json")); err == nil || !strings.Contains(err.Error(), "nope.json") {
		t.Errorf("missing file: %v", err)
	}
}

func TestHFSpecialTokens(t *testing.T) {
	// Ids from the files' own added_tokens lists and tokenizer_config.json.
	for _, tc := range []struct {
		dir                string
		bos, eos           int // with tokenizer_config.json (LoadHF)
		parseBOS, parseEOS int // from the known names alone (ParseHF)
		vocab              int
	}{
		{"tinyllama", 1, 2, 1, 2, 32000},
		{"smollm", 1, 2, 0, 0, 49152}, // <|im_start|>/<|im_end|> vs <|endoftext|>
	} {
		tok := loadHF(t, tc.dir)
		if tok.BOS() != tc.bos || tok.EOS() != tc.eos || tok.VocabSize() != tc.vocab {
			t.Errorf("%s: LoadHF BOS %d EOS %d VocabSize %d, want %d %d %d", tc.dir, tok.BOS(), tok.EOS(), tok.VocabSize(), tc.bos, tc.eos, tc.vocab)
		}
		data, err := os.ReadFile("testdata/" + tc.dir + "/tokenizer.json")
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseHF(data)
		if err != nil {
			t.Fatal(err)
		}
		if p.BOS() != tc.parseBOS || p.EOS() != tc.parseEOS {
			t.Errorf("%s: ParseHF BOS %d EOS %d, want %d %d", tc.dir, p.BOS(), p.EOS(), tc.parseBOS, tc.parseEOS)
		}
	}
	// Config forms: a string, an object with content, null.
	for _, tc := range []struct {
		cfg      string
		bos, eos int
	}{
		{`{"bos_token": "▁a"}`, 4, -1},
		{`{"bos_token": {"content": "b", "__type": "AddedToken"}, "eos_token": "<s>"}`, 3, 0},
		{`{"bos_token": null}`, -1, -1},
		{`{}`, 0, -1},
	} {
		tok, err := ParseHFWithConfig([]byte(tinyHF), []byte(tc.cfg))
		if err != nil {
			t.Fatalf("%s: %v", tc.cfg, err)
		}
		if tok.BOS() != tc.bos || tok.EOS() != tc.eos {
			t.Errorf("%s: BOS %d EOS %d, want %d %d", tc.cfg, tok.BOS(), tok.EOS(), tc.bos, tc.eos)
		}
	}
	_, err := ParseHFWithConfig([]byte(tinyHF), []byte(`{"eos_token": 5}`))
	if err == nil || !strings.Contains(err.Error(), "tokenizer_config.json: eos_token") {
		t.Errorf("bad config: %v", err)
	}
}

// TestHFMergesAsPairs converts SmolLM's "a b" merges to [a, b] pairs, the
// newer form, and checks nothing changes.
func TestHFMergesAsPairs(t *testing.T) {
	data, err := os.ReadFile("testdata/smollm/tokenizer.json")
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	model := file["model"].(map[string]any)
	merges := model["merges"].([]any)
	for k, m := range merges {
		a, b, ok := strings.Cut(m.(string), " ")
		if !ok {
			t.Fatalf("merge %q", m)
		}
		merges[k] = []string{a, b}
	}
	data, err = json.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	pairs, err := ParseHF(data)
	if err != nil {
		t.Fatal(err)
	}
	ref := loadHF(t, "smollm")
	for _, text := range []string{"Hello world", "The quick brown fox's tail, 12345!", "日本語 😀"} {
		if got, want := pairs.Encode(text), ref.Encode(text); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v with pairs, %v with strings", text, got, want)
		}
	}
}
