package train

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/model/chat"
	"github.com/golora/golora/model/tokenizer"
)

// chatEncoder returns a chat.Encoder for a model of model/chat's test data
// ("smollm", "qwen2.5" or "llama-3.2"), with the date of Llama's system
// prompt fixed.
func chatEncoder(t testing.TB, model string) chat.Encoder {
	t.Helper()
	tokFile := map[string]string{
		"smollm":    "../model/tokenizer/testdata/smollm/tokenizer.json",
		"qwen2.5":   "../model/tokenizer/testdata/qwen2.5/tokenizer.json.gz",
		"llama-3.2": "../model/tokenizer/testdata/llama3/tokenizer.json.gz",
	}[model]
	f, err := os.Open(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(tokFile, ".gz") {
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
	tmpl, err := chat.LoadConfig("../model/chat/testdata/" + model + "/tokenizer_config.json")
	if err != nil {
		t.Fatal(err)
	}
	return chat.Encoder{Tokenizer: tok, Template: tmpl, Options: chat.RenderOptions{Vars: map[string]any{"date_string": "26 Jul 2024"}}}
}

// TestReadJSONLMessages reads conversations of model/chat's golden cases as
// JSONL and checks tokens and loss flags against the ids and assistant masks
// of Hugging Face tokenizers (model/chat/testdata/README.md).
func TestReadJSONLMessages(t *testing.T) {
	var cases struct {
		Conversations []struct {
			Name             string          `json:"name"`
			GenerationPrompt bool            `json:"generation_prompt"`
			Messages         json.RawMessage `json:"messages"`
		} `json:"conversations"`
	}
	var golden struct {
		Cases []struct {
			Model, Case string
			IDs         []int `json:"ids"`
			Assistant   []int `json:"assistant"`
		} `json:"cases"`
	}
	for path, v := range map[string]any{"../model/chat/testdata/cases.json": &cases, "../model/chat/testdata/golden_chat.json": &golden} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, model := range []string{"smollm", "qwen2.5", "llama-3.2"} {
		enc := chatEncoder(t, model)
		var in bytes.Buffer
		var names []string
		for _, c := range cases.Conversations {
			if c.GenerationPrompt {
				continue
			}
			var line bytes.Buffer
			if err := json.Compact(&line, c.Messages); err != nil {
				t.Fatal(err)
			}
			in.WriteString(`{"messages": ` + line.String() + "}\n")
			names = append(names, c.Name)
		}
		exs, err := ReadJSONL(&in, "chat.jsonl", enc, enc.VocabSize(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(exs) != len(names) {
			t.Fatalf("%s: %d examples, want %d", model, len(exs), len(names))
		}
		for i, name := range names {
			for _, g := range golden.Cases {
				if g.Model != model || g.Case != name {
					continue
				}
				if !slices.Equal(exs[i].Tokens, g.IDs) {
					t.Errorf("%s/%s: tokens differ from the golden ids", model, name)
				}
				for k, a := range g.Assistant {
					if want := a == 1 && k > 0; exs[i].Loss[k] != want {
						t.Errorf("%s/%s: Loss[%d] = %v, want %v", model, name, k, exs[i].Loss[k], want)
					}
				}
			}
		}
	}
}

func TestReadJSONLMessagesErrors(t *testing.T) {
	enc := chatEncoder(t, "smollm")
	raising, err := chat.NewTemplate(`{{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}`, "model/tokenizer_config.json: chat_template", "", "")
	if err != nil {
		t.Fatal(err)
	}
	ok := `{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}` + "\n"
	for _, tc := range []struct {
		name string
		tok  Encoder
		line string
		want string
	}{
		{"no template", byteTokenizer{}, ok, `chat.jsonl:2: "messages" needs the model's chat template`},
		{"render error", chat.Encoder{Tokenizer: enc.Tokenizer, Template: raising}, ok, "chat.jsonl:2: chat: model/tokenizer_config.json: chat_template: render: Conversation roles must alternate"},
		{"mixed shapes", enc, `{"messages": [], "text": "x"}`, `chat.jsonl:2: "messages" cannot come with "text"`},
		{"not a list", enc, `{"messages": {"role": "user"}}`, `chat.jsonl:2: "messages": want a list`},
		{"empty", enc, `{"messages": []}`, `chat.jsonl:2: "messages" is empty`},
		{"null", enc, `{"messages": null}`, `chat.jsonl:2: "messages" is empty`},
		{"no role", enc, `{"messages": [{"content": "x"}]}`, `chat.jsonl:2: "messages"[0]: needs a non-empty "role"`},
		{"no content", enc, `{"messages": [{"role": "user"}, {"role": "assistant", "content": null}]}`, `chat.jsonl:2: "messages"[0]: needs a string "content"`},
		{"tool calls", enc, `{"messages": [{"role": "assistant", "content": "", "tool_calls": []}]}`, `chat.jsonl:2: "messages"[0]: want {"role": string, "content": string}: json: unknown field "tool_calls"`},
		{"no assistant", enc, `{"messages": [{"role": "user", "content": "hi"}]}`, `chat.jsonl:2: "messages" has no assistant turn`},
	} {
		_, err := ReadJSONL(strings.NewReader(ok+tc.line+"\n"), "chat.jsonl", tc.tok, 49152, 0)
		if tc.name == "no template" || tc.name == "render error" {
			_, err = ReadJSONL(strings.NewReader("\n"+tc.line), "chat.jsonl", tc.tok, 49152, 0)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

// FuzzReadJSONLMessages feeds arbitrary "messages" lines, rendered with
// SmolLM's real template and tokenizer: examples or errors, never a panic,
// and every example usable.
func FuzzReadJSONLMessages(f *testing.F) {
	enc := chatEncoder(f, "smollm")
	f.Add([]byte(`{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}`))
	f.Add([]byte(`{"messages": [{"role": "assistant", "content": "<|im_end|> caf\u00e9"}]}` + "\n" + `{"messages": [{"role": "user", "content": ""}]}`))
	f.Add([]byte(`{"messages": [{"role": "user", "content": "x", "name": "a"}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		vocab := enc.VocabSize()
		exs, err := ReadJSONL(bytes.NewReader(in), "fuzz.jsonl", enc, vocab, 0)
		if err != nil {
			return
		}
		if err := checkExamples("fuzzed", exs, vocab); err != nil {
			t.Fatalf("ReadJSONL returned an unusable example: %v", err)
		}
	})
}

// TestReadJSONLMessagesMaxTokensAndEnd checks that a conversation is cut to
// maxTokens like the other shapes (the prefix of the whole example), and that
// WithEnd, which only changes how text examples end, keeps the chat template.
func TestReadJSONLMessagesMaxTokensAndEnd(t *testing.T) {
	enc := chatEncoder(t, "smollm")
	line := `{"messages": [{"role": "user", "content": "Tell me a story."}, {"role": "assistant", "content": "Once upon a time there was a fish."}]}` + "\n"
	whole, err := ReadJSONL(strings.NewReader(line), "chat.jsonl", enc, enc.VocabSize(), 0)
	if err != nil {
		t.Fatal(err)
	}
	n := len(whole[0].Tokens) - 3
	cut, err := ReadJSONL(strings.NewReader(line), "chat.jsonl", enc, enc.VocabSize(), n)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cut[0].Tokens, whole[0].Tokens[:n]) || !slices.Equal(cut[0].Loss, whole[0].Loss[:n]) {
		t.Errorf("maxTokens %d: got %d tokens, want the first %d of the whole example", n, len(cut[0].Tokens), n)
	}
	if _, err := ReadJSONL(strings.NewReader(line), "chat.jsonl", enc, enc.VocabSize(), 1); err == nil || !strings.Contains(err.Error(), "at least 2 are needed") {
		t.Errorf("maxTokens 1: err %v", err)
	}
	ended, err := ReadJSONL(strings.NewReader(line), "chat.jsonl", WithEnd(enc, enc.BOS()), enc.VocabSize(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ended[0].Tokens, whole[0].Tokens) || !slices.Equal(ended[0].Loss, whole[0].Loss) {
		t.Error("WithEnd changed the rendered conversation")
	}
}
