package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ardanlabs/jinja"

	"github.com/golora/golora/internal/fsutil"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Template is a compiled chat template and the special tokens it refers to.
// It is safe for concurrent use.
type Template struct {
	tmpl   *jinja.Template
	text   string
	source string // the file and key the template came from, for errors
	// BOS and EOS are the texts of the tokenizer's bos_token and eos_token
	// ("" when there is none), passed to the template as bos_token and
	// eos_token.
	BOS, EOS string
	// AddBOS is add_bos_token: whether the tokenizer prepends BOS to text it
	// encodes. Templates that need BOS write {{ bos_token }} themselves, so
	// Encode never adds it.
	AddBOS bool
}

// RenderOptions are the per-call inputs of a template.
type RenderOptions struct {
	// AddGenerationPrompt appends the text that opens an assistant turn, for
	// inference.
	AddGenerationPrompt bool
	// Vars are further template variables, such as "date_string" (which
	// Llama 3.x templates otherwise take from strftime_now, the current
	// date) or "tools".
	Vars map[string]any
}

// NewTemplate compiles a Jinja chat template. source names where it came
// from in error messages.
func NewTemplate(text, source, bos, eos string) (*Template, error) {
	tmpl, err := jinja.Compile(text)
	if err != nil {
		return nil, fmt.Errorf("chat: %s: %w", source, err)
	}
	return &Template{tmpl: tmpl, text: text, source: source, BOS: bos, EOS: eos}, nil
}

// Text returns the template's Jinja source, as NewTemplate was given it.
func (t *Template) Text() string { return t.text }

// LoadConfig reads the chat template of the tokenizer_config.json at path:
// the one named "default" (see LoadConfigNamed).
func LoadConfig(path string) (*Template, error) {
	return LoadConfigNamed(path, "")
}

// LoadConfigNamed reads the chat template called name ("" for "default") of
// the tokenizer_config.json at path. Its chat_template is either one
// template, which is "default", or a list of {"name", "template"}. When the
// file has no chat_template, the templates are those recent transformers
// versions save beside it: chat_template.jinja, the "default", and
// additional_chat_templates/NAME.jinja for each other NAME. A name that is
// not there is an error naming the file and the names it has.
func LoadConfigNamed(path, name string) (*Template, error) {
	cfg, source, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	return cfg.template(source, name)
}

// ConfigNames returns the names of the chat templates LoadConfigNamed finds
// for the tokenizer_config.json at path, sorted.
func ConfigNames(path string) ([]string, error) {
	cfg, _, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	return Names(cfg.templates), nil
}

// Names of the files transformers saves chat templates in, beside
// tokenizer_config.json (transformers.utils.hub's CHAT_TEMPLATE_FILE and
// CHAT_TEMPLATE_DIR).
const (
	jinjaFile         = "chat_template.jinja"
	additionalJinjaIn = "additional_chat_templates"
)

// loadConfig reads the tokenizer_config.json at path and the templates
// LoadConfigNamed finds for it, with the source to name in errors.
func loadConfig(path string) (*config, string, error) {
	data, err := fsutil.ReadRegular(path, fsutil.ConfigLimit)
	if err != nil {
		return nil, "", fmt.Errorf("chat: %w", err)
	}
	cfg, err := parseConfig(data)
	if err != nil {
		return nil, "", fmt.Errorf("chat: %s: %w", path, err)
	}
	if cfg.templates != nil {
		return cfg, path + ": chat_template", nil
	}
	dir := filepath.Dir(path)
	jinjaPath := filepath.Join(dir, jinjaFile)
	text, err := fsutil.ReadRegular(jinjaPath, fsutil.ConfigLimit)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, "", fmt.Errorf("chat: %s has no chat_template and there is no %s", path, jinjaPath)
	case err != nil:
		return nil, "", fmt.Errorf("chat: %w", err)
	}
	cfg.templates = map[string]string{DefaultName: string(text)}
	extra, err := filepath.Glob(filepath.Join(dir, additionalJinjaIn, "*.jinja"))
	if err != nil {
		return nil, "", fmt.Errorf("chat: %w", err)
	}
	for _, p := range extra {
		name := strings.TrimSuffix(filepath.Base(p), ".jinja")
		if name == DefaultName {
			continue // chat_template.jinja is the default, as in transformers
		}
		text, err := fsutil.ReadRegular(p, fsutil.ConfigLimit)
		if err != nil {
			return nil, "", fmt.Errorf("chat: %w", err)
		}
		cfg.templates[name] = string(text)
	}
	source := jinjaPath
	if len(extra) > 0 {
		source = filepath.Join(dir, "{"+jinjaFile+","+additionalJinjaIn+"/*.jinja}")
	}
	return cfg, source, nil
}

// ParseConfig reads the chat template of a tokenizer_config.json. name is
// the file's name in error messages. When chat_template is a list of named
// templates, the one named "default" is used; ParseConfigNamed chooses
// another.
func ParseConfig(data []byte, name string) (*Template, error) {
	return ParseConfigNamed(data, name, "")
}

// ParseConfigNamed is ParseConfig with the name of the template to use from
// a list of named templates ("" for "default").
func ParseConfigNamed(data []byte, name, template string) (*Template, error) {
	cfg, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("chat: %s: %w", name, err)
	}
	if cfg.templates == nil {
		return nil, fmt.Errorf("chat: %s has no chat_template", name)
	}
	return cfg.template(name+": chat_template", template)
}

// config is the part of tokenizer_config.json that chat templates need.
type config struct {
	templates map[string]string // nil when there is no chat_template
	bos, eos  string
	addBOS    bool
}

func (c *config) template(source, name string) (*Template, error) {
	text, name, err := Lookup(c.templates, name)
	if err != nil {
		return nil, fmt.Errorf("chat: %s: %w", source, err)
	}
	if len(c.templates) > 1 {
		source += "[" + name + "]"
	}
	t, err := NewTemplate(text, source, c.bos, c.eos)
	if err != nil {
		return nil, err
	}
	t.AddBOS = c.addBOS
	return t, nil
}

// DefaultName is the name of the template a model uses when none is
// chosen: a tokenizer_config.json's single chat_template, its
// chat_template.jinja, a GGUF file's tokenizer.chat_template.
const DefaultName = "default"

// Lookup returns the text of the template called name ("" for DefaultName)
// among templates (texts by name), and that name; a name templates does not
// have is an error listing the names it has. It is the choice of a named
// template for every format that carries several.
func Lookup(templates map[string]string, name string) (text, resolved string, err error) {
	if name == "" {
		name = DefaultName
	}
	text, ok := templates[name]
	if !ok {
		return "", "", fmt.Errorf("no template named %q (have %s)", name, strings.Join(Names(templates), ", "))
	}
	return text, name, nil
}

// Names returns the names of templates (texts by name), sorted.
func Names(templates map[string]string) []string {
	return slices.Sorted(maps.Keys(templates))
}

func parseConfig(data []byte) (*config, error) {
	var raw struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
		AddBOS       *bool           `json:"add_bos_token"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("not a tokenizer_config.json: %w", err)
	}
	c := &config{}
	var err error
	if c.bos, err = tokenText(raw.BOS); err != nil {
		return nil, fmt.Errorf("bos_token: %w", err)
	}
	if c.eos, err = tokenText(raw.EOS); err != nil {
		return nil, fmt.Errorf("eos_token: %w", err)
	}
	c.addBOS = raw.AddBOS != nil && *raw.AddBOS
	if isNull(raw.ChatTemplate) {
		return c, nil
	}
	var single string
	if err := json.Unmarshal(raw.ChatTemplate, &single); err == nil {
		c.templates = map[string]string{DefaultName: single}
		return c, nil
	}
	var list []struct {
		Name     *string `json:"name"`
		Template *string `json:"template"`
	}
	if err := json.Unmarshal(raw.ChatTemplate, &list); err != nil {
		return nil, fmt.Errorf("chat_template: want a string or a list of {\"name\", \"template\"}, got %.60s", raw.ChatTemplate)
	}
	c.templates = make(map[string]string, len(list))
	for i, e := range list {
		if e.Name == nil || e.Template == nil {
			return nil, fmt.Errorf("chat_template[%d]: needs both name and template", i)
		}
		if _, dup := c.templates[*e.Name]; dup {
			return nil, fmt.Errorf("chat_template[%d]: name %q appears twice", i, *e.Name)
		}
		c.templates[*e.Name] = *e.Template
	}
	if len(c.templates) == 0 {
		return nil, errors.New("chat_template: empty list")
	}
	return c, nil
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// tokenText reads a special token that is a string, an AddedToken object
// ({"content": ...}) or null.
func tokenText(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if json.Unmarshal(raw, &obj) != nil || obj.Content == nil {
		return "", fmt.Errorf("want a string or an object with \"content\", got %.60s", raw)
	}
	return *obj.Content, nil
}

// Render returns the text of messages in the template's format.
func (t *Template) Render(messages []Message, opt RenderOptions) (string, error) {
	s, err := t.render(messages, opt.AddGenerationPrompt, opt.Vars)
	if err != nil {
		return "", fmt.Errorf("chat: %s: %w", t.source, err)
	}
	return s, nil
}

func (t *Template) render(messages []Message, addGenerationPrompt bool, vars map[string]any) (string, error) {
	msgs := make([]any, len(messages))
	for i, m := range messages {
		msgs[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	data := make(map[string]any, len(vars)+4)
	for k, v := range vars {
		data[k] = v
	}
	data["messages"] = msgs
	data["add_generation_prompt"] = addGenerationPrompt
	data["bos_token"] = t.BOS
	data["eos_token"] = t.EOS
	s, err := t.tmpl.Render(data)
	if err != nil {
		return "", fmt.Errorf("render: %w", err)
	}
	return s, nil
}
