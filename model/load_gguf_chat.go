package model

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/model/chat"
	"github.com/golora/golora/model/tokenizer"
)

// ErrNoChatTemplate is wrapped by the error of Base.ChatTemplate for a model
// that has no chat template.
var ErrNoChatTemplate = errors.New("no chat template")

// GGUF metadata keys of the chat template (llama.cpp's gguf-py constants).
const (
	ggufChatTemplateKey = "tokenizer.chat_template"
	ggufAddBOSKey       = "tokenizer.ggml.add_bos_token"
	ggufBOSKey          = "tokenizer.ggml.bos_token_id"
	ggufEOSKey          = "tokenizer.ggml.eos_token_id"
)

// ggufChat is the chat template of a GGUF file and the texts of the special
// tokens it refers to.
type ggufChat struct {
	text     string
	bos, eos string // "" when the file names no such token
	addBOS   bool
}

// ggufChatTemplate reads tokenizer.chat_template (llama.cpp's converter
// stores there the "default" template of tokenizer_config.json) and the texts
// of tokenizer.ggml.bos_token_id and eos_token_id, which the template sees as
// bos_token and eos_token, as in the tokenizer_config.json it came from. It
// returns nil when the file has no template. The template is compiled here,
// so that a file whose template does not compile is refused at load time,
// naming the key.
func ggufChatTemplate(f *gguf.File, tok tokenizer.Tokenizer) (*ggufChat, error) {
	if _, ok := f.Lookup(ggufChatTemplateKey); !ok {
		return nil, nil
	}
	text, err := f.String(ggufChatTemplateKey)
	if err != nil {
		return nil, err
	}
	piecer, ok := tok.(interface{ Piece(int) string })
	if !ok {
		return nil, fmt.Errorf("gguf: %s: the tokenizer (%T) cannot name its special tokens", ggufChatTemplateKey, tok)
	}
	c := &ggufChat{text: text}
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
		if c.addBOS, err = f.Bool(ggufAddBOSKey); err != nil {
			return nil, err
		}
	}
	if _, err := c.template(); err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	return c, nil
}

func (c *ggufChat) template() (*chat.Template, error) {
	t, err := chat.NewTemplate(c.text, ggufChatTemplateKey, c.bos, c.eos)
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
func (b *Base) ChatTemplate() (*chat.Template, error) {
	switch b.Format {
	case FormatGGUF:
		if b.ggufChat == nil {
			return nil, fmt.Errorf("model: %s has no %s (%w)", b.Path, ggufChatTemplateKey, ErrNoChatTemplate)
		}
		t, err := b.ggufChat.template()
		if err != nil {
			return nil, fmt.Errorf("model: %s: %w", b.Path, err)
		}
		return t, nil
	case FormatHF:
		dir := b.Path
		if b.tokenizerPath != "" {
			dir = filepath.Dir(b.tokenizerPath)
		}
		cfg := filepath.Join(dir, hfTokenizerConfigFile)
		if _, err := os.Stat(cfg); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("model: %s has no %s (%w)", dir, hfTokenizerConfigFile, ErrNoChatTemplate)
		}
		return chat.LoadConfig(cfg)
	}
	return nil, fmt.Errorf("model: a %s checkpoint carries no chat template (%w)", b.Format, ErrNoChatTemplate)
}
