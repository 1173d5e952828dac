package chat

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/golora/golora/model/tokenizer"
)

type goldenCase struct {
	Model     string `json:"model"`
	Case      string `json:"case"`
	Text      string `json:"text"`
	IDs       []int  `json:"ids"`
	Assistant []int  `json:"assistant"`
}

type testCases struct {
	Extra  map[string]any `json:"extra"`
	Models []struct {
		Name   string `json:"name"`
		Config string `json:"tokenizer_config"`
	} `json:"models"`
	Conversations []struct {
		Name             string    `json:"name"`
		GenerationPrompt bool      `json:"generation_prompt"`
		Messages         []Message `json:"messages"`
	} `json:"conversations"`
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// tokenizerFiles are the tokenizer.json files of the golden models, kept
// with model/tokenizer's test data.
var tokenizerFiles = map[string]string{
	"llama-3.1": "../tokenizer/testdata/llama3/tokenizer.json.gz",
	"llama-3.2": "../tokenizer/testdata/llama3/tokenizer.json.gz",
	"qwen2.5":   "../tokenizer/testdata/qwen2.5/tokenizer.json.gz",
	"smollm":    "../tokenizer/testdata/smollm/tokenizer.json",
}

// loaded caches the parsed tokenizers: the Llama-3 one serves two models,
// and parsing a 6 MB tokenizer.json takes seconds.
var loaded sync.Map

func loadTokenizer(t testing.TB, model string) tokenizer.Tokenizer {
	t.Helper()
	path := tokenizerFiles[model]
	if tok, ok := loaded.Load(path); ok {
		return tok.(tokenizer.Tokenizer)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		if r, err = gzip.NewReader(f); err != nil {
			t.Fatal(err)
		}
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.ParseHF(data)
	if err != nil {
		t.Fatal(err)
	}
	loaded.Store(path, tok)
	return tok
}

// TestGolden renders the real chat templates of Llama 3.1, Llama 3.2,
// Qwen2.5 and SmolLM and compares text, ids and assistant masks with Python Jinja2 and
// Hugging Face tokenizers (testdata/README.md).
func TestGolden(t *testing.T) {
	var cases testCases
	readJSON(t, "testdata/cases.json", &cases)
	var golden struct {
		Cases []goldenCase `json:"cases"`
	}
	readJSON(t, "testdata/golden_chat.json", &golden)
	want := map[string]goldenCase{}
	for _, g := range golden.Cases {
		want[g.Model+"/"+g.Case] = g
	}
	for _, m := range cases.Models {
		t.Run(m.Name, func(t *testing.T) {
			tmpl, err := LoadConfig("testdata/" + m.Config)
			if err != nil {
				t.Fatal(err)
			}
			tok := loadTokenizer(t, m.Name)
			for _, c := range cases.Conversations {
				g, ok := want[m.Name+"/"+c.Name]
				if !ok {
					t.Fatalf("no golden for %s/%s", m.Name, c.Name)
				}
				opt := RenderOptions{AddGenerationPrompt: c.GenerationPrompt, Vars: cases.Extra}
				text, err := tmpl.Render(c.Messages, opt)
				if err != nil {
					t.Fatalf("%s: %v", c.Name, err)
				}
				if text != g.Text {
					t.Errorf("%s: Render =\n%q\nwant\n%q", c.Name, text, g.Text)
				}
				enc, err := tmpl.Encode(tok, c.Messages, opt)
				if err != nil {
					t.Fatalf("%s: %v", c.Name, err)
				}
				if !slices.Equal(enc.IDs, g.IDs) {
					t.Errorf("%s: ids\n%v\nwant\n%v", c.Name, enc.IDs, g.IDs)
				}
				mask := make([]int, len(enc.Assistant))
				for i, a := range enc.Assistant {
					if a {
						mask[i] = 1
					}
				}
				if !slices.Equal(mask, g.Assistant) {
					t.Errorf("%s: assistant mask\n%v\nwant\n%v", c.Name, mask, g.Assistant)
				}
			}
		})
	}
}
