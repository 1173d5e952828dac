package chat

import (
	"encoding/json"
	"os"
	"testing"
)

// FuzzParseConfig feeds tokenizer_config.json variants to ParseConfig: never
// a panic, errors only. (Rendering arbitrary templates is left out: a
// template is a program, and a mutated one may loop for as long as it says.)
func FuzzParseConfig(f *testing.F) {
	for _, path := range []string{"testdata/llama-3.2/tokenizer_config.json", "testdata/qwen2.5/tokenizer_config.json", "testdata/smollm/tokenizer_config.json"} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		// The fuzzer stalls on large seeds; added_tokens_decoder (most of
		// Llama's 54 KB) is not read by ParseConfig anyway.
		var cfg map[string]any
		if err := json.Unmarshal(data, &cfg); err != nil {
			f.Fatal(err)
		}
		delete(cfg, "added_tokens_decoder")
		small, err := json.Marshal(cfg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(small)
	}
	f.Add([]byte(`{"chat_template": [{"name": "default", "template": "{{ messages[0].content }}"}], "bos_token": {"content": "<s>"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if tmpl, err := ParseConfig(data, "tokenizer_config.json"); err == nil && tmpl == nil {
			t.Fatal("nil template without an error")
		}
	})
}

// FuzzEncode renders and encodes fuzzed conversations with the real
// templates: never a panic, and a mask as long as the ids.
func FuzzEncode(f *testing.F) {
	type model struct {
		tmpl *Template
		tok  TextCoder
	}
	var models []model
	for _, name := range []string{"llama-3.2", "qwen2.5", "smollm"} {
		tmpl, err := LoadConfig("testdata/" + name + "/tokenizer_config.json")
		if err != nil {
			f.Fatal(err)
		}
		models = append(models, model{tmpl, loadTokenizer(f, name)})
	}
	f.Add(uint8(0), "system", "Be brief.", "user", "Hi! I'm 12345", "assistant", " Hello  there\n")
	f.Add(uint8(1), "user", "Cafe\u0301", "assistant", "The\u0301", "user", "<|im_end|>")
	f.Add(uint8(2), "assistant", "", "assistant", "<|eot_id|>x", "tool", "{}")
	f.Fuzz(func(t *testing.T, which uint8, r1, c1, r2, c2, r3, c3 string) {
		m := models[int(which)%len(models)]
		msgs := []Message{{r1, c1}, {r2, c2}, {r3, c3}}
		enc, err := m.tmpl.Encode(m.tok, msgs, RenderOptions{Vars: map[string]any{"date_string": "1 Jan 2026"}})
		if err != nil {
			return
		}
		if len(enc.IDs) != len(enc.Assistant) {
			t.Fatalf("%d ids, %d mask entries", len(enc.IDs), len(enc.Assistant))
		}
	})
}
