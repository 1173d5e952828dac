package chat

import (
	"fmt"
	"slices"
	"strings"
)

// TextCoder is the part of a tokenizer that Encode needs;
// model/tokenizer.Tokenizer satisfies it.
type TextCoder interface {
	Encode(text string) []int
	Decode(ids []int) string
}

// Encoding is a tokenized conversation.
type Encoding struct {
	// IDs are the token ids of the rendered conversation, special tokens
	// included as the template writes them (BOS too, if it does).
	IDs []int
	// Assistant[i] reports whether IDs[i] belongs to an assistant turn.
	Assistant []bool
}

// Encode renders messages, tokenizes the text and marks the tokens of the
// assistant turns.
//
// The span of assistant message i is found by rendering: it starts where
// the conversation up to message i ends when rendered with the generation
// prompt, and ends where the conversation up to and including message i
// ends. Each rendering must be a prefix of the next, which holds for the
// chat templates of Llama 3.x, Qwen2.5, SmolLM and ChatML; a template for
// which it does not is an error, never a silent mask.
//
// Tokens are mapped to text by decoding the ids one prefix at a time; a
// token belongs to an assistant turn when its text overlaps the turn's span
// (a token that straddles the boundary, such as " Hello" after a prompt
// that ends in the space, counts). When decoding does not give the text
// back (a normalizer changed it, or characters the vocabulary lacks were
// dropped), the spans are tokenized separately instead, which is accepted
// only if the pieces' ids concatenate to the ids of the whole text.
func (t *Template) Encode(tok TextCoder, messages []Message, opt RenderOptions) (Encoding, error) {
	enc, err := t.encode(tok, messages, opt)
	if err != nil {
		return Encoding{}, fmt.Errorf("chat: %s: %w", t.source, err)
	}
	return enc, nil
}

// span is a byte range of the rendered text.
type span struct{ start, end int }

func (t *Template) encode(tok TextCoder, messages []Message, opt RenderOptions) (Encoding, error) {
	full, err := t.render(messages, opt.AddGenerationPrompt, opt.Vars)
	if err != nil {
		return Encoding{}, err
	}
	spans, err := t.assistantSpans(messages, full, opt.Vars)
	if err != nil {
		return Encoding{}, err
	}
	ids := tok.Encode(full)
	if offs, ok := tokenOffsets(tok, ids, full); ok {
		return Encoding{IDs: ids, Assistant: markSpans(offs, spans)}, nil
	}
	return encodeSegments(tok, ids, full, spans)
}

// assistantSpans finds the text of each assistant message in full.
func (t *Template) assistantSpans(messages []Message, full string, vars map[string]any) ([]span, error) {
	var spans []span
	for i, m := range messages {
		if m.Role != "assistant" {
			continue
		}
		before, err := t.render(messages[:i], true, vars)
		if err != nil {
			return nil, fmt.Errorf("messages[:%d] with the generation prompt: %w", i, err)
		}
		upTo, err := t.render(messages[:i+1], false, vars)
		if err != nil {
			return nil, fmt.Errorf("messages[:%d]: %w", i+1, err)
		}
		if !strings.HasPrefix(upTo, before) || !strings.HasPrefix(full, upTo) {
			return nil, fmt.Errorf("cannot find assistant message %d: the template does not render the conversation before it (with the generation prompt) as a prefix of the conversation", i)
		}
		spans = append(spans, span{len(before), len(upTo)})
	}
	return spans, nil
}

// tokenOffsets returns the byte offset in text where each token starts, and
// len(text) last, if decoding the ids gives text back: token by token when
// each token decodes on its own to its part of the text (byte-level BPE),
// else one prefix of the ids at a time (vocabularies whose decoding of a
// token depends on the token before it).
func tokenOffsets(tok TextCoder, ids []int, text string) ([]int, bool) {
	offs := make([]int, len(ids)+1)
	alone := true
	for k, id := range ids {
		piece := tok.Decode([]int{id})
		if !strings.HasPrefix(text[offs[k]:], piece) {
			alone = false
			break
		}
		offs[k+1] = offs[k] + len(piece)
	}
	if alone && offs[len(ids)] == len(text) {
		return offs, true
	}
	for k := 1; k <= len(ids); k++ {
		prefix := tok.Decode(ids[:k])
		if !strings.HasPrefix(text, prefix) || len(prefix) < offs[k-1] {
			return nil, false
		}
		offs[k] = len(prefix)
	}
	return offs, offs[len(ids)] == len(text)
}

// markSpans marks the tokens whose byte range [offs[k], offs[k+1]) overlaps
// one of spans.
func markSpans(offs []int, spans []span) []bool {
	mark := make([]bool, len(offs)-1)
	for k := range mark {
		for _, s := range spans {
			if offs[k] < s.end && offs[k+1] > s.start {
				mark[k] = true
				break
			}
		}
	}
	return mark
}

// encodeSegments tokenizes the text between span boundaries separately,
// accepting the result only when it equals the ids of the whole text.
func encodeSegments(tok TextCoder, ids []int, full string, spans []span) (Encoding, error) {
	var enc Encoding
	add := func(text string, assistant bool) {
		for _, id := range tok.Encode(text) {
			enc.IDs = append(enc.IDs, id)
			enc.Assistant = append(enc.Assistant, assistant)
		}
	}
	at := 0
	for _, s := range spans {
		add(full[at:s.start], false)
		add(full[s.start:s.end], true)
		at = s.end
	}
	add(full[at:], false)
	if !slices.Equal(enc.IDs, ids) {
		return Encoding{}, fmt.Errorf("cannot align assistant turns with tokens: decoding the ids does not give the text back, and tokenizing the turns separately gives other ids than tokenizing the whole conversation")
	}
	return enc, nil
}
