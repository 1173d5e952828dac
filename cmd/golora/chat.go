package main

import (
	"fmt"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/chat"
	"github.com/golora/golora/model/tokenizer"
	"github.com/golora/golora/train"
)

// dataEncoder returns what reads training JSONL for ck: its tokenizer, which
// also renders {"messages": [...]} lines with the model's chat template
// (model.Base.ChatTemplateNamed with --chat-template: the
// tokenizer_config.json beside --tokenizer or in the model directory, or a
// GGUF file's tokenizer.chat_template). A model without a usable default
// template still reads text lines; a messages line then fails with the
// reason the template is missing. A --chat-template other than the default
// that the model does not have is an error. The encoder is nil for a model
// loaded without a tokenizer.
func (m *modelFlags) dataEncoder(ck *model.Base) (chatDataEncoder, error) {
	if ck.Tokenizer == nil {
		return nil, nil // pre-tokenized data only
	}
	tmpl, err := ck.ChatTemplateNamed(m.chatTemplate)
	if err != nil && m.chatTemplate != "" && m.chatTemplate != chat.DefaultName {
		return nil, fmt.Errorf("--chat-template %s: %w", m.chatTemplate, err)
	}
	if err != nil {
		return noTemplate{ck.Tokenizer, fmt.Errorf("model %s has no chat template for \"messages\" data: %w", ck.Path, err)}, nil
	}
	return chat.Encoder{Tokenizer: ck.Tokenizer, Template: tmpl}, nil
}

// chatDataEncoder reads every kind of JSONL line, messages included.
type chatDataEncoder interface {
	train.Encoder
	train.ChatEncoder
}

// withEndChat is train.WithEnd's encoder that still reads messages lines.
type withEndChat struct {
	train.Encoder
	chat train.ChatEncoder
}

func (w withEndChat) EncodeChat(messages []chat.Message) (chat.Encoding, error) {
	return w.chat.EncodeChat(messages)
}

// noTemplate is a tokenizer whose model has no chat template: EncodeChat
// reports why.
type noTemplate struct {
	tokenizer.Tokenizer
	err error
}

func (n noTemplate) EncodeChat([]chat.Message) (chat.Encoding, error) { return chat.Encoding{}, n.err }
