// Package tokenizer turns text into token ids and back for LLaMA-family
// models.
//
// Three families are supported:
//
//   - SentencePiece-style BPE with scores, as stored in llama2.c tokenizer
//     files (LoadLlama2C) and in GGUF "tokenizer.ggml.*" metadata with model
//     "llama" (NewSentencePiece). Encoding prepends a dummy-prefix space, maps
//     each UTF-8 character to its piece (or to <0xXX> byte pieces), then
//     repeatedly merges the adjacent pair whose concatenation is the piece with
//     the highest score, leftmost first on ties.
//   - Hugging Face tokenizer.json files with model type "BPE" (LoadHF): the
//     Llama-2 SentencePiece vocabulary with byte fallback (normalizer
//     Prepend+Replace, or a Metaspace pre-tokenizer) and byte-level BPE
//     (ByteLevel pre-tokenizer, optionally after Digits, or after the Split
//     patterns of Llama-3 and Qwen2, with Qwen2's NFC normalizer). Merges are
//     applied by rank; added tokens are matched as whole strings before BPE.
//   - The same byte-level BPE from GGUF "tokenizer.ggml.*" metadata with
//     model "gpt2" (NewByteLevelBPE), its pre-tokenizer chosen by
//     tokenizer.ggml.pre ("llama-bpe", "qwen2", "smollm", "gpt-2").
//
// Encode never adds BOS or EOS; callers prepend BOS() themselves when the
// model expects it.
package tokenizer

import (
	"unicode/utf8"
)

// Tokenizer turns text into token ids and back.
type Tokenizer interface {
	// Encode returns the token ids of text, without BOS or EOS.
	Encode(text string) []int
	// Decode returns the text of ids. For the tokenizers of this package
	// Decode(Encode(s)) == s for valid UTF-8 s, except for the cases
	// documented on the concrete type, and ids outside the vocabulary
	// decode to U+FFFD.
	Decode(ids []int) string
	// BOS returns the beginning-of-sequence id, or -1 if there is none.
	BOS() int
	// EOS returns the end-of-sequence id, or -1 if there is none.
	EOS() int
	// VocabSize returns the number of ids (one more than the largest id).
	VocabSize() int
}

// tokenAppender is implemented by the tokenizers of this package: Decode is
// the concatenation of appendToken over the ids, where each token's text
// depends only on itself and on the token before it (prev is -1 at the
// start). This lets StreamDecoder decode one token at a time.
type tokenAppender interface {
	appendToken(dst []byte, prev, id int) []byte
}

// decodeWith decodes ids by concatenating the text of each token.
func decodeWith(t tokenAppender, ids []int) string {
	var out []byte
	prev := -1
	for _, id := range ids {
		out = t.appendToken(out, prev, id)
		prev = id
	}
	return string(out)
}

// invalidID is what an id outside the vocabulary decodes to: visible in the
// output rather than silently dropped.
const invalidID = "\uFFFD"

// StreamDecoder decodes generated tokens one at a time. It holds back the
// bytes of a UTF-8 character that byte-fallback tokens have only begun, and
// applies the leading-space rule of the tokenizer, so that the concatenation
// of everything Next and Flush return equals Decode of all the ids.
type StreamDecoder struct {
	tok     Tokenizer
	app     tokenAppender // nil for tokenizers from outside this package
	prev    int
	pending []byte // decoded bytes not returned yet
	ids     []int  // all ids so far, only when app is nil
	emitted int    // bytes of Decode(ids) returned so far, only when app is nil
}

// NewStreamDecoder returns a StreamDecoder for t. Tokenizers from outside this
// package are supported by re-decoding all ids on each call.
func NewStreamDecoder(t Tokenizer) *StreamDecoder {
	d := &StreamDecoder{tok: t, prev: -1}
	if a, ok := t.(tokenAppender); ok {
		d.app = a
	}
	return d
}

// Next adds id and returns the text that it completes, which may be empty
// while a multi-byte character is still incomplete.
func (d *StreamDecoder) Next(id int) string {
	if d.app == nil {
		d.ids = append(d.ids, id)
		full := d.tok.Decode(d.ids)
		if len(full) < d.emitted {
			// The tokenizer rewrote earlier text; nothing consistent can be
			// returned until it grows again.
			return ""
		}
		d.pending = append(d.pending[:0], full[d.emitted:]...)
	} else {
		d.pending = d.app.appendToken(d.pending, d.prev, id)
		d.prev = id
	}
	n := completeUTF8Prefix(d.pending)
	out := string(d.pending[:n])
	if d.app == nil {
		d.emitted += n
		d.pending = d.pending[:0]
		return out
	}
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return out
}

// Prime records ids as already shown (typically the prompt, printed by the
// caller as Decode(ids)), so that the tokens passed to Next next are decoded
// as their continuation: a generated first word keeps its leading space.
// It discards anything pending.
func (d *StreamDecoder) Prime(ids []int) {
	d.pending = d.pending[:0]
	if len(ids) == 0 {
		return
	}
	if d.app == nil {
		d.ids = append(d.ids, ids...)
		d.emitted = len(d.tok.Decode(d.ids))
		return
	}
	d.prev = ids[len(ids)-1]
}

// Flush returns the bytes still held back (an incomplete UTF-8 sequence at
// the end of the tokens) and resets the decoder's pending state. It keeps the
// previous token, so Next may continue after it.
func (d *StreamDecoder) Flush() string {
	if d.app == nil {
		full := d.tok.Decode(d.ids)
		if len(full) < d.emitted {
			return ""
		}
		out := full[d.emitted:]
		d.emitted = len(full)
		return out
	}
	out := string(d.pending)
	d.pending = d.pending[:0]
	return out
}

// completeUTF8Prefix returns the length of the longest prefix of b that does
// not end in the start of a UTF-8 character whose remaining bytes may still
// come. Invalid bytes count as complete: no later byte can fix them.
func completeUTF8Prefix(b []byte) int {
	// A UTF-8 character is at most 4 bytes, so only the last 3 bytes can be
	// the start of an unfinished one.
	for back := 1; back <= 3 && back <= len(b); back++ {
		i := len(b) - back
		c := b[i]
		if c < 0x80 {
			return len(b)
		}
		if c >= 0xC0 { // a leading byte
			if !utf8.FullRune(b[i:]) {
				return i
			}
			return len(b)
		}
	}
	return len(b)
}
