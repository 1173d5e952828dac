package tokenizer

import (
	"encoding/json"
	"os"
	"slices"
	"sync"
	"testing"
)

// loadedHF caches the testdata tokenizers across tests: each takes ~0.1 s
// to parse. Tokenizers are read-only after loading.
var loadedHF = map[string]func() (Tokenizer, error){
	"tinyllama": sync.OnceValues(func() (Tokenizer, error) { return LoadHF("testdata/tinyllama/tokenizer.json") }),
	"smollm":    sync.OnceValues(func() (Tokenizer, error) { return LoadHF("testdata/smollm/tokenizer.json") }),
}

func loadHF(t testing.TB, dir string) *BPE {
	t.Helper()
	tok, err := loadedHF[dir]()
	if err != nil {
		t.Fatal(err)
	}
	return tok.(*BPE)
}

// hfGolden is a golden file written by a throwaway script with Hugging Face
// tokenizers 0.23.2 (npm package "tokenizers", the library's Rust core):
// encode(text, null, {addSpecialTokens: false}) and decode(ids, false), for
// the tokenizer.json as shipped ("base") and for variants whose top-level
// fields are replaced by "patch".
type hfGolden struct {
	Tool     string `json:"tool"`
	Variants map[string]struct {
		Patch map[string]json.RawMessage `json:"patch"`
		Cases []goldenCase               `json:"cases"`
	} `json:"variants"`
}

func readHFGolden(t *testing.T, path string) hfGolden {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g hfGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(g.Variants) < 3 {
		t.Fatalf("%s: only %d variants", path, len(g.Variants))
	}
	return g
}

// patchJSON replaces top-level fields of a tokenizer.json.
func patchJSON(t *testing.T, data []byte, patch map[string]json.RawMessage) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range patch {
		m[k] = v
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHFGolden(t *testing.T) {
	for _, dir := range []string{"tinyllama", "smollm"} {
		data, err := os.ReadFile("testdata/" + dir + "/tokenizer.json")
		if err != nil {
			t.Fatal(err)
		}
		g := readHFGolden(t, "testdata/golden_"+dir+".json")
		for name, v := range g.Variants {
			tok, err := ParseHF(patchJSON(t, data, v.Patch))
			if err != nil {
				t.Fatalf("%s/%s: %v", dir, name, err)
			}
			bpe := tok.(*BPE)
			if len(v.Cases) < 200 {
				t.Fatalf("%s/%s: only %d cases", dir, name, len(v.Cases))
			}
			for _, c := range v.Cases {
				got := tok.Encode(c.Text)
				if !slices.Equal(got, c.IDs) {
					t.Errorf("%s/%s: Encode(%q) =\n%v, want\n%v", dir, name, c.Text, got, c.IDs)
					continue
				}
				// Where no added token is involved and byte pieces form
				// valid UTF-8, Decode agrees with the library's decode.
				if name == "base" && !slices.ContainsFunc(got, func(id int) bool { _, ok := bpe.addedIDs[bpe.Piece(id)]; return ok }) {
					if d := tok.Decode(got); d != c.Decoded {
						t.Errorf("%s/%s: Decode(%v) = %q, want %q", dir, name, got, d, c.Decoded)
					}
				}
			}
		}
	}
}

// BenchmarkParseHF parses Llama-3.2's tokenizer.json (128,256 tokens,
// 280,147 merges), which a Hugging Face load does alongside the weights.
func BenchmarkParseHF(b *testing.B) {
	data := readMaybeGzip(b, "testdata/llama3/tokenizer.json.gz")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHF(data); err != nil {
			b.Fatal(err)
		}
	}
}
