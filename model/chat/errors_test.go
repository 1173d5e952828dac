package chat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseConfigForms(t *testing.T) {
	for _, tc := range []struct {
		name, json, template string
		bos, eos             string
		addBOS               bool
	}{
		{"strings", `{"chat_template": "{{ bos_token }}x{{ eos_token }}", "bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true}`, "", "<s>", "</s>", true},
		{"added-token objects", `{"chat_template": "{{ bos_token }}x{{ eos_token }}", "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": {"__type": "AddedToken", "content": "</s>"}}`, "", "<s>", "</s>", false},
		{"null tokens", `{"chat_template": "{{ bos_token }}x{{ eos_token }}", "bos_token": null}`, "", "", "", false},
		{"named list", `{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ bos_token }}x{{ eos_token }}"}], "bos_token": "<s>", "eos_token": "</s>"}`, "", "<s>", "</s>", false},
		{"named list, other", `{"chat_template": [{"name": "tool_use", "template": "{{ bos_token }}x{{ eos_token }}"}, {"name": "default", "template": "D"}], "bos_token": "<s>", "eos_token": "</s>"}`, "tool_use", "<s>", "</s>", false},
	} {
		tmpl, err := ParseConfigNamed([]byte(tc.json), "tokenizer_config.json", tc.template)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if tmpl.BOS != tc.bos || tmpl.EOS != tc.eos || tmpl.AddBOS != tc.addBOS {
			t.Errorf("%s: BOS %q EOS %q AddBOS %v", tc.name, tmpl.BOS, tmpl.EOS, tmpl.AddBOS)
		}
		got, err := tmpl.Render(nil, RenderOptions{})
		if want := tc.bos + "x" + tc.eos; err != nil || got != want {
			t.Errorf("%s: Render = %q, %v; want %q", tc.name, got, err, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`[1]`, "tokenizer_config.json: not a tokenizer_config.json"},
		{`{}`, "tokenizer_config.json has no chat_template"},
		{`{"chat_template": 3}`, "chat_template: want a string or a list"},
		{`{"chat_template": [{"name": "a"}]}`, "chat_template[0]: needs both name and template"},
		{`{"chat_template": [{"name": "a", "template": "x"}, {"name": "a", "template": "y"}]}`, `chat_template[1]: name "a" appears twice`},
		{`{"chat_template": [{"name": "b", "template": "x"}, {"name": "a", "template": "y"}]}`, `no template named "default" (have a, b)`},
		{`{"chat_template": "x", "bos_token": 5}`, "bos_token: want a string or an object"},
		{`{"chat_template": "x", "eos_token": {"id": 2}}`, "eos_token: want a string or an object"},
		{`{"chat_template": "{% for %}"}`, "tokenizer_config.json: chat_template: jinja"},
	} {
		_, err := ParseConfig([]byte(tc.json), "tokenizer_config.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%s): error %v, want it to contain %q", tc.json, err, tc.want)
		}
	}
}

func TestRenderErrorNamesFileAndKey(t *testing.T) {
	tmpl, err := LoadConfig("testdata/llama-3.2/tokenizer_config.json")
	if err != nil {
		t.Fatal(err)
	}
	raising, err := NewTemplate("{% if messages[0].role != 'user' %}{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}ok", "x/tokenizer_config.json: chat_template", "", "")
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{{Role: "assistant", Content: "hi"}}
	_, err = raising.Render(msgs, RenderOptions{})
	if err == nil || !strings.Contains(err.Error(), "x/tokenizer_config.json: chat_template: render: ") || !strings.Contains(err.Error(), "roles must alternate") {
		t.Errorf("Render error %v", err)
	}
	_, err = raising.Encode(nil, msgs, RenderOptions{})
	if err == nil || !strings.Contains(err.Error(), "x/tokenizer_config.json: chat_template") {
		t.Errorf("Encode error %v", err)
	}
	if _, err := tmpl.Render([]Message{{Role: "user", Content: "hi"}}, RenderOptions{}); err != nil {
		t.Errorf("Llama 3.2 without date_string (strftime_now): %v", err)
	}
}

func TestLoadConfigChatTemplateJinja(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tokenizer_config.json")
	if err := os.WriteFile(cfg, []byte(`{"eos_token": "<|im_end|>"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(cfg); err == nil || !strings.Contains(err.Error(), "has no chat_template and there is no") {
		t.Errorf("error %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "chat_template.jinja"), []byte("{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, err := LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Render([]Message{{"user", "a"}, {"assistant", "b"}}, RenderOptions{})
	if err != nil || got != "a<|im_end|>b<|im_end|>" {
		t.Errorf("Render = %q, %v", got, err)
	}
}

// A template that renders a later turn differently once more messages
// follow cannot be split into turns; Encode must say so.
func TestEncodeRefusesNonPrefixTemplate(t *testing.T) {
	tmpl, err := NewTemplate("{% for m in messages %}{{ m.content }}{% if loop.last %}.{% endif %}{% endfor %}", "t", "", "")
	if err != nil {
		t.Fatal(err)
	}
	tok := loadTokenizer(t, "smollm")
	_, err = tmpl.Encode(tok, []Message{{"user", "a"}, {"assistant", "b"}, {"user", "c"}}, RenderOptions{})
	if err == nil || !strings.Contains(err.Error(), "cannot find assistant message 1") {
		t.Errorf("error %v", err)
	}
}

// TestTemplateFeatures checks the Jinja features real chat templates use
// against Python Jinja2 3.1.6 with transformers' settings (trim_blocks,
// lstrip_blocks, loopcontrols, json.dumps-style tojson), whose outputs are
// the wanted strings.
func TestTemplateFeatures(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}", "02"},
		{"{% set ns = namespace(x=1) %}{% for m in [1,2] %}{% set ns.x = ns.x + m %}{% endfor %}{{ ns.x }}", "4"},
		{"  {% if true %}\n  yes\n  {% endif %}\nend", "  yes\nend"},
		{`{{ [1, 2.5, true, none, "é\""] | tojson }}`, `[1, 2.5, true, null, "é\""]`},
		{"{{ messages | length }}{{ messages[0]['content'] | trim }}{{ messages[-1].role }}", "2xassistant"},
		{"{% for m in messages %}{{ loop.index0 }}{{ m.role[0] }}{% if not loop.last %},{% endif %}{% endfor %}", "0u,1a"},
	} {
		tmpl, err := NewTemplate(tc.src, "t", "", "")
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		got, err := tmpl.Render([]Message{{"user", " x "}, {"assistant", "y"}}, RenderOptions{})
		if err != nil || got != tc.want {
			t.Errorf("%s: Render = %q, %v; want %q", tc.src, got, err, tc.want)
		}
	}
}
