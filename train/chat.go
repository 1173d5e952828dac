package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/golora/golora/model/chat"
)

// ChatEncoder renders and tokenizes a conversation with a model's chat
// template. An Encoder that also implements it (chat.Encoder does) lets
// ReadJSONL read {"messages": [...]} lines.
type ChatEncoder interface {
	EncodeChat(messages []chat.Message) (chat.Encoding, error)
}

// chatExample turns the "messages" of a JSONL record into an example whose
// targets are the assistant tokens. maxTokens, if positive, keeps only the
// first maxTokens tokens, as ReadJSONL does for the other shapes.
func chatExample(raw json.RawMessage, tok Encoder, vocabSize, maxTokens int) (Example, error) {
	// WithEnd changes how text examples end; a chat template ends turns
	// its own way, so the wrapped encoder renders the conversation.
	if e, ok := tok.(endEncoder); ok {
		tok = e.Encoder
	}
	ce, ok := tok.(ChatEncoder)
	if !ok {
		return Example{}, errors.New(`"messages" needs the model's chat template (a chat.Encoder with the tokenizer_config.json template)`)
	}
	msgs, err := parseMessages(raw)
	if err != nil {
		return Example{}, err
	}
	enc, err := ce.EncodeChat(msgs)
	if err != nil {
		return Example{}, err
	}
	if len(enc.IDs) != len(enc.Assistant) {
		return Example{}, fmt.Errorf("chat encoder returned %d ids and %d mask entries", len(enc.IDs), len(enc.Assistant))
	}
	targets := 0
	for i, id := range enc.IDs {
		if id < 0 || id >= vocabSize {
			return Example{}, fmt.Errorf("token %d of the rendered conversation has id %d, outside the vocabulary [0, %d)", i, id, vocabSize)
		}
		// The first token has nothing before it to be predicted from.
		if enc.Assistant[i] && i > 0 {
			targets++
		}
	}
	if targets == 0 {
		return Example{}, errors.New(`"messages" has no assistant turn after the first token: nothing to train on`)
	}
	ids := enc.IDs
	if maxTokens > 0 && len(ids) > maxTokens {
		ids = ids[:maxTokens]
	}
	if len(ids) < 2 {
		return Example{}, fmt.Errorf("example has %d tokens; at least 2 are needed to predict one", len(ids))
	}
	loss := append([]bool(nil), enc.Assistant[:len(ids)]...)
	loss[0] = false
	return Example{Tokens: ids, Loss: loss}, nil
}

// parseMessages reads [{"role": ..., "content": ...}, ...], refusing other
// fields (tool calls, images) rather than training on a conversation
// without them.
func parseMessages(raw json.RawMessage) ([]chat.Message, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf(`"messages": want a list of {"role", "content"}: %w`, err)
	}
	if len(items) == 0 {
		return nil, errors.New(`"messages" is empty`)
	}
	msgs := make([]chat.Message, len(items))
	for i, item := range items {
		var m struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		}
		dec := json.NewDecoder(bytes.NewReader(item))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf(`"messages"[%d]: want {"role": string, "content": string}: %w`, i, err)
		}
		if m.Role == nil || *m.Role == "" {
			return nil, fmt.Errorf(`"messages"[%d]: needs a non-empty "role"`, i)
		}
		if m.Content == nil {
			return nil, fmt.Errorf(`"messages"[%d]: needs a string "content"`, i)
		}
		msgs[i] = chat.Message{Role: *m.Role, Content: *m.Content}
	}
	return msgs, nil
}
