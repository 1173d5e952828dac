package chat

import "github.com/golora/golora/model/tokenizer"

// Encoder pairs a tokenizer with a chat template: it encodes plain text as
// the tokenizer does and conversations with EncodeChat, which is what
// train.ReadJSONL needs to read {"messages": [...]} lines.
type Encoder struct {
	tokenizer.Tokenizer
	Template *Template
	Options  RenderOptions
}

// EncodeChat renders and tokenizes messages with the template and marks the
// assistant tokens; see Template.Encode.
func (e Encoder) EncodeChat(messages []Message) (Encoding, error) {
	return e.Template.Encode(e.Tokenizer, messages, e.Options)
}
