package model_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/chat"
	"github.com/golora/golora/model/tokenizer"
)

// namedTemplatesConfig returns SmolLM2's real tokenizer_config.json with its
// chat_template turned into the list of named templates that models with a
// tool-calling template ship (Hermes-2-Pro, Command-R: [{"name": "default",
// ...}, {"name": "tool_use", ...}]), and the two template texts. The
// tool_use one is ChatML with the tools listed in a system turn.
func namedTemplatesConfig(t *testing.T) (cfgJSON []byte, def, toolUse string) {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(readMaybeGzip(t, "chat/testdata/smollm/tokenizer_config.json"), &cfg); err != nil {
		t.Fatal(err)
	}
	def = cfg["chat_template"].(string)
	toolUse = "<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n" + def
	cfg["chat_template"] = []map[string]string{{"name": "default", "template": def}, {"name": "tool_use", "template": toolUse}}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfgJSON, def, toolUse
}

// TestChatTemplateNamed: a Hugging Face model whose tokenizer_config.json
// holds named chat templates gives each by name ("" and "default" the
// default), lists them, and refuses a missing name naming the file and the
// names it has; written with WriteGGUF, the file holds llama.cpp's keys
// (tokenizer.chat_template, tokenizer.chat_template.tool_use and the name
// list tokenizer.chat_templates) and loads back with the same templates.
func TestChatTemplateNamed(t *testing.T) {
	cfgJSON, def, toolUse := namedTemplatesConfig(t)
	tokJSON := readMaybeGzip(t, "tokenizer/testdata/smollm/tokenizer.json")
	tok, err := tokenizer.ParseHFWithConfig(tokJSON, cfgJSON)
	if err != nil {
		t.Fatal(err)
	}
	cfg := model.Config{Dim: 16, HiddenDim: 32, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 8, VocabSize: tok.VocabSize(),
		MaxSeqLen: 64, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true}
	dir, hf, b := hfToGGUF(t, model.RandomWeights(cfg, 1), tokJSON, cfgJSON, "named")

	f, err := gguf.Open(b.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for key, want := range map[string]string{"tokenizer.chat_template": def, "tokenizer.chat_template.tool_use": toolUse} {
		if got, err := f.String(key); err != nil || got != want {
			t.Errorf("GGUF %s = %.40q, %v; want the config's template", key, got, err)
		}
	}
	if names, err := f.Strings("tokenizer.chat_templates"); err != nil || !slices.Equal(names, []string{"tool_use"}) {
		t.Errorf("GGUF tokenizer.chat_templates = %q, %v; want [tool_use]", names, err)
	}

	for _, m := range []*model.Base{hf, b} {
		names, err := m.ChatTemplateNames()
		if err != nil || !slices.Equal(names, []string{"default", "tool_use"}) {
			t.Errorf("%s: names %q, %v", m.Format, names, err)
		}
		for name, want := range map[string]string{"": def, "default": def, "tool_use": toolUse} {
			tmpl, err := m.ChatTemplateNamed(name)
			if err != nil {
				t.Fatalf("%s: template %q: %v", m.Format, name, err)
			}
			if tmpl.Text() != want {
				t.Errorf("%s: template %q is not the config's", m.Format, name)
			}
		}
		tmpl, err := m.ChatTemplateNamed("tool_use")
		if err != nil {
			t.Fatal(err)
		}
		text, err := tmpl.Render([]chat.Message{{Role: "user", Content: "hi"}}, chat.RenderOptions{Vars: map[string]any{"tools": []string{"search"}}})
		if want := "<|im_start|>system\nTools: [\"search\"]<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"; err != nil || text != want {
			t.Errorf("%s: tool_use renders %q, %v; want %q", m.Format, text, err, want)
		}
		_, err = m.ChatTemplateNamed("rag")
		where := b.Path
		if m == hf {
			where = filepath.Join(dir, "tokenizer_config.json")
		}
		if err == nil || !strings.Contains(err.Error(), where) || !strings.Contains(err.Error(), `"rag"`) || !strings.Contains(err.Error(), "default, tool_use") {
			t.Errorf("%s: a missing name: err %v, want the file, the name and the names it has", m.Format, err)
		}
	}
}

// TestChatTemplateNamedJinjaFiles: a directory as recent transformers save
// it — no chat_template in tokenizer_config.json, chat_template.jinja and
// additional_chat_templates/NAME.jinja beside it — gives the same names.
func TestChatTemplateNamedJinjaFiles(t *testing.T) {
	cfgJSON, def, toolUse := namedTemplatesConfig(t)
	var cfg map[string]any
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatal(err)
	}
	delete(cfg, "chat_template")
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	for path, data := range map[string]string{
		cfgPath: string(cfgJSON), filepath.Join(dir, "chat_template.jinja"): def,
		filepath.Join(dir, "additional_chat_templates", "tool_use.jinja"): toolUse,
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	names, err := chat.ConfigNames(cfgPath)
	if err != nil || !slices.Equal(names, []string{"default", "tool_use"}) {
		t.Fatalf("names %q, %v", names, err)
	}
	for name, want := range map[string]string{"": def, "tool_use": toolUse} {
		tmpl, err := chat.LoadConfigNamed(cfgPath, name)
		if err != nil || tmpl.Text() != want {
			t.Errorf("template %q: %v", name, err)
		}
	}
	if _, err := chat.LoadConfigNamed(cfgPath, "rag"); err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "default, tool_use") {
		t.Errorf("a missing name: err %v", err)
	}
}
