package tokenizer

import (
	"errors"
	"fmt"
	"reflect"
)

// llamaNormalizer is the normalizer of a Llama-2-style tokenizer.json (as
// transformers converts a SentencePiece model): prepend "▁", then spaces to
// "▁".
var llamaNormalizer = []normStep{{isPrepend: true, prepend: spaceMarker}, {isReplace: true, from: " ", to: spaceMarker}}

// SentencePiece returns the SentencePiece form of a Llama-2-style
// tokenizer.json (byte fallback, the Prepend and Replace normalizer, no
// pre-tokenizer: Llama 2, Mistral 7B v0.1, Phi-3), the form GGUF's "llama"
// tokenizer model stores, with vocab pieces (ids the vocabulary does not use
// become unused pieces "[PAD<id>]"). Scores carry the merge order: a piece
// made by merges scores minus the rank of its first merge, so merging the
// highest-scoring pair merges in rank order; other pieces score -1e9 (byte
// and single-character pieces are never the result of a merge). Byte pieces
// <0xXX> are byte pieces, the unknown piece unknown, added tokens marked
// special control pieces and other added tokens user-defined. BOS and EOS
// are the tokenizer's.
//
// SentencePiece merges any adjacent pair whose concatenation is a piece,
// where tokenizer.json's BPE merges only the listed pairs; for vocabularies
// converted from SentencePiece, as these are, the two agree. Control pieces
// spelled out in the text (<s>) are read as text, where tokenizer.json
// matches its special added tokens.
func (t *BPE) SentencePiece(vocab int) (*SentencePiece, error) {
	switch {
	case t.byteLevel || !t.byteFallback:
		return nil, errors.New("tokenizer: not a Llama-2-style (byte-fallback) BPE tokenizer")
	case len(t.pre) != 0 || !reflect.DeepEqual(t.normalizer, llamaNormalizer) || t.ignoreMerges:
		return nil, errors.New("tokenizer: only the Prepend(\"▁\") and Replace(\" \", \"▁\") normalizer with no pre-tokenizer has a SentencePiece form")
	case vocab < len(t.pieces):
		return nil, fmt.Errorf("tokenizer: %d tokens do not fit a vocabulary of %d", len(t.pieces), vocab)
	}
	pieces := make([]string, vocab)
	scores := make([]float32, vocab)
	types := make([]int32, vocab)
	for id := range vocab {
		scores[id] = -1e9
		if id >= len(t.pieces) || !t.used[id] {
			pieces[id], types[id] = fmt.Sprintf("[PAD%d]", id), PieceUnused
			continue
		}
		pieces[id] = t.pieces[id]
		_, isByte := parseByteToken(pieces[id])
		switch {
		case t.special[id]:
			types[id] = PieceControl
		case t.isAddedID(id):
			types[id] = PieceUserDefined
		case id == t.unk:
			types[id] = PieceUnknown
		case isByte:
			types[id] = PieceByte
		default:
			types[id] = PieceNormal
		}
	}
	for _, m := range t.merges {
		if s := -float32(m.rank); types[m.id] == PieceNormal && (scores[m.id] == -1e9 || s > scores[m.id]) {
			scores[m.id] = s
		}
	}
	sp, err := NewSentencePiece(pieces, scores, types, t.bos, t.eos)
	if err != nil {
		return nil, err
	}
	return sp, nil
}
