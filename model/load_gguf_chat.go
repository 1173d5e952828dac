package model

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/model/chat"
	"github.com/golora/golora/model/tokenizer"
)

// ErrNoChatTemplate is wrapped by the error of Base.ChatTemplate for a model
// that has no chat template.
var ErrNoChatTemplate = errors.New("no chat template")

// GGUF metadata keys of the chat template (llama.cpp's gguf-py constants):
// the default template, each other named template under
// tokenizer.chat_template.NAME, and the list of those names.
const (
	ggufChatTemplateKey  = "tokenizer.chat_template"
	ggufChatTemplatesKey = "tokenizer.chat_templates"
	ggufNamedTemplatePfx = ggufChatTemplateKey + "."
	ggufAddBOSKey        = "tokenizer.ggml.add_bos_token"
	ggufBOSKey           = "tokenizer.ggml.bos_token_id"
	ggufEOSKey           = "tokenizer.ggml.eos_token_id"
)

// ggufChat is the chat template of a GGUF file and the texts of the special
// tokens it refers to.
type ggufChat struct {
	texts    map[string]string // by name; the default one is "default"
	bos, eos string            // "" when the file names no such token
	addBOS   bool
}

// ggufChatTemplate reads tokenizer.chat_template (llama.cpp's converter
// stores there the "default" template of tokenizer_config.json), the other
// named templates (tokenizer.chat_template.NAME) and the texts of
// tokenizer.ggml.bos_token_id and eos_token_id, which the templates see as
// bos_token and eos_token, as in the tokenizer_config.json they came from.
// It returns nil when the file has no template. The templates are compiled
// here, so that a file whose template does not compile is refused at load
// time, naming the key.
func ggufChatTemplate(f *gguf.File, tok tokenizer.Tokenizer) (*ggufChat, error) {
	texts := map[string]string{}
	for _, kv := range f.KVs() {
		name, ok := strings.CutPrefix(kv.Key, ggufNamedTemplatePfx)
		if kv.Key != ggufChatTemplateKey && (!ok || name == "") {
			continue
		}
		if !ok {
			name = chat.DefaultName
		}
		text, err := f.String(kv.Key)
		if err != nil {
			return nil, err
		}
		texts[name] = text
	}
	if len(texts) == 0 {
		return nil, nil
	}
	piecer, ok := tok.(interface{ Piece(int) string })
	if !ok {
		return nil, fmt.Errorf("gguf: %s: the tokenizer (%T) cannot name its special tokens", ggufChatTemplateKey, tok)
	}
	c := &ggufChat{texts: texts}
	for _, sp := range []struct {
		key string
		dst *string
	}{{ggufBOSKey, &c.bos}, {ggufEOSKey, &c.eos}} {
		if _, ok := f.Lookup(sp.key); !ok {
			continue
		}
		id, err := f.Int(sp.key)
		if err != nil {
			return nil, err
		}
		if id < 0 || id >= int64(tok.VocabSize()) {
			return nil, fmt.Errorf("gguf: %s %d is outside the %d-token vocabulary", sp.key, id, tok.VocabSize())
		}
		*sp.dst = piecer.Piece(int(id))
	}
	// llama.cpp adds BOS by default for SentencePiece vocabularies only.
	_, c.addBOS = tok.(*tokenizer.SentencePiece)
	if _, ok := f.Lookup(ggufAddBOSKey); ok {
		var err error
		if c.addBOS, err = f.Bool(ggufAddBOSKey); err != nil {
			return nil, err
		}
	}
	for _, name := range chat.Names(c.texts) {
		if _, err := c.template(name); err != nil {
			return nil, fmt.Errorf("gguf: %w", err)
		}
	}
	return c, nil
}

// template compiles the template called name ("" for "default").
func (c *ggufChat) template(name string) (*chat.Template, error) {
	text, name, err := chat.Lookup(c.texts, name)
	if err != nil {
		return nil, err
	}
	key := ggufChatTemplateKey
	if name != chat.DefaultName {
		key = ggufNamedTemplatePfx + name
	}
	t, err := chat.NewTemplate(text, key, c.bos, c.eos)
	if err != nil {
		return nil, err
	}
	t.AddBOS = c.addBOS
	return t, nil
}

// ChatTemplate returns the model's chat template, with which chat data
// ({"messages": [...]}) is rendered for training and /v1/chat/completions
// for serving: for a GGUF file, its tokenizer.chat_template, with the texts
// of tokenizer.ggml.bos_token_id and eos_token_id as bos_token and
// eos_token; for a Hugging Face directory, the tokenizer_config.json (or
// chat_template.jinja) beside its tokenizer — LoadOptions.TokenizerPath if
// one was given, else the directory's (see chat.LoadConfig). For a model
// with none (a GGUF file without the key, a directory without
// tokenizer_config.json, other formats) the error wraps ErrNoChatTemplate.
// It is ChatTemplateNamed(""): the template named "default".
func (b *Base) ChatTemplate() (*chat.Template, error) {
	return b.ChatTemplateNamed("")
}

// ChatTemplateNamed is ChatTemplate for a model with several named chat
// templates (a tokenizer_config.json whose chat_template is a list of
// {"name", "template"}, additional_chat_templates/NAME.jinja files, a GGUF
// file's tokenizer.chat_template.NAME keys): the one called name, "" being
// "default". A name the model does not have is an error naming the file
// and the names it has.
func (b *Base) ChatTemplateNamed(name string) (*chat.Template, error) {
	switch b.Format {
	case FormatGGUF:
		if b.ggufChat == nil {
			return nil, fmt.Errorf("model: %s has no %s (%w)", b.Path, ggufChatTemplateKey, ErrNoChatTemplate)
		}
		t, err := b.ggufChat.template(name)
		if err != nil {
			return nil, fmt.Errorf("model: %s: %w", b.Path, err)
		}
		return t, nil
	case FormatHF:
		cfg, err := b.hfChatConfig()
		if err != nil {
			return nil, err
		}
		return chat.LoadConfigNamed(cfg, name)
	}
	return nil, fmt.Errorf("model: a %s checkpoint carries no chat template (%w)", b.Format, ErrNoChatTemplate)
}

// ChatTemplateNames returns the names of the model's chat templates,
// sorted ("default" among them when it has a default one); the error wraps
// ErrNoChatTemplate for a model with none, as ChatTemplate's.
func (b *Base) ChatTemplateNames() ([]string, error) {
	switch b.Format {
	case FormatGGUF:
		if b.ggufChat == nil {
			return nil, fmt.Errorf("model: %s has no %s (%w)", b.Path, ggufChatTemplateKey, ErrNoChatTemplate)
		}
		return chat.Names(b.ggufChat.texts), nil
	case FormatHF:
		cfg, err := b.hfChatConfig()
		if err != nil {
			return nil, err
		}
		return chat.ConfigNames(cfg)
	}
	return nil, fmt.Errorf("model: a %s checkpoint carries no chat template (%w)", b.Format, ErrNoChatTemplate)
}

// hfChatConfig returns the tokenizer_config.json the chat templates of a
// Hugging Face model come from.
func (b *Base) hfChatConfig() (string, error) {
	dir := b.Path
	if b.tokenizerPath != "" {
		dir = filepath.Dir(b.tokenizerPath)
	}
	cfg := filepath.Join(dir, hfTokenizerConfigFile)
	if _, err := os.Stat(cfg); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("model: %s has no %s (%w)", dir, hfTokenizerConfigFile, ErrNoChatTemplate)
	}
	return cfg, nil
}
