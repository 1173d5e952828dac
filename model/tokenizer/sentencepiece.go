package tokenizer

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strings"
	"unicode/utf8"
)

// Piece types of SentencePiece vocabularies, as stored in GGUF
// tokenizer.ggml.token_type. Type 0 (undefined) is treated as normal.
const (
	PieceNormal      = 1
	PieceUnknown     = 2
	PieceControl     = 3
	PieceUserDefined = 4
	PieceUnused      = 5
	PieceByte        = 6
)

// SentencePiece is a SentencePiece-style BPE tokenizer: pieces with scores,
// merged by highest score (leftmost on ties), with byte fallback to <0xXX>
// pieces, as in llama2.c and llama.cpp's "llama" vocabularies.
//
// Decode strips the leading space of a text piece that comes first or right
// after BOS (the dummy prefix that Encode adds), renders control pieces (BOS,
// EOS) as nothing and byte pieces as their byte. When the vocabulary marks
// spaces with U+2581 ("▁", as GGUF and SentencePiece do), a literal U+2581 in
// the input encodes like a space and so decodes as one; that is the only
// text for which Decode(Encode(s)) != s.
type SentencePiece struct {
	// The pieces are stored compactly, since a server keeps its tokenizer
	// for good (32000 pieces: about 0.9 MB here against 4 MB as strings and
	// a map): piece id is data[offs[id]:offs[id+1]].
	data    string
	offs    []uint32
	scores  []float32
	types   []int8
	byteOf  []int16  // byte value of byte pieces, -1 for others
	byteID  [256]int // id of <0xXX>, -1 if the vocabulary lacks it
	charIDs pieceIndex
	user    *matcher // user-defined pieces, matched whole before merging
	space   string   // how pieces spell a space: "▁" or " " (llama2.c)
	bos     int
	eos     int
	unk     int
}

var _ Tokenizer = (*SentencePiece)(nil)

// spaceMarker is SentencePiece's visible stand-in for a space.
const spaceMarker = "\u2581"

// NewSentencePiece builds a tokenizer from parallel slices of pieces, scores
// and piece types (as in GGUF tokenizer.ggml.tokens, .scores and .token_type).
// types may be nil, in which case <0xXX> pieces are bytes, bos and eos are
// control pieces and the rest are normal. bos and eos may be -1. Byte pieces
// are found by their text, so their ids need not be byte+3.
func NewSentencePiece(pieces []string, scores []float32, types []int32, bos, eos int) (*SentencePiece, error) {
	if len(pieces) == 0 {
		return nil, errors.New("tokenizer: empty vocabulary")
	}
	if len(scores) != len(pieces) {
		return nil, fmt.Errorf("tokenizer: %d scores for %d pieces", len(scores), len(pieces))
	}
	if types != nil && len(types) != len(pieces) {
		return nil, fmt.Errorf("tokenizer: %d token types for %d pieces", len(types), len(pieces))
	}
	space := " "
	for _, p := range pieces {
		if strings.Contains(p, spaceMarker) {
			space = spaceMarker
			break
		}
	}
	return newSentencePiece(pieces, scores, types, bos, eos, space)
}

func newSentencePiece(pieces []string, scores []float32, types []int32, bos, eos int, space string) (*SentencePiece, error) {
	n := len(pieces)
	for _, s := range []struct {
		name string
		id   int
	}{{"BOS", bos}, {"EOS", eos}} {
		if s.id < -1 || s.id >= n {
			return nil, fmt.Errorf("tokenizer: %s id %d outside vocabulary of %d", s.name, s.id, n)
		}
	}
	size := 0
	for _, p := range pieces {
		size += len(p)
	}
	if size > math.MaxUint32 {
		return nil, fmt.Errorf("tokenizer: pieces of %d bytes in all, more than 4 GiB", size)
	}
	var data strings.Builder
	data.Grow(size)
	offs := make([]uint32, n+1)
	for id, p := range pieces {
		data.WriteString(p)
		offs[id+1] = uint32(data.Len())
	}
	t := &SentencePiece{
		data:   data.String(),
		offs:   offs,
		scores: scores,
		types:  make([]int8, n),
		byteOf: make([]int16, n),
		space:  space,
		bos:    bos,
		eos:    eos,
		unk:    -1,
	}
	var merged []int32 // ids of charIDs
	for i := range t.byteID {
		t.byteID[i] = -1
	}
	var userPieces []matchPattern
	for id := range pieces {
		p := t.piece(id)
		if math.IsNaN(float64(scores[id])) {
			return nil, fmt.Errorf("tokenizer: piece %d (%q) has a NaN score", id, p)
		}
		typ := int32(PieceNormal)
		b, isByte := parseByteToken(p)
		switch {
		case types != nil:
			typ = types[id]
			if typ == 0 {
				typ = PieceNormal
			}
			if typ < PieceNormal || typ > PieceByte {
				return nil, fmt.Errorf("tokenizer: piece %d (%q) has unknown token type %d", id, p, types[id])
			}
			if typ == PieceByte && !isByte {
				return nil, fmt.Errorf("tokenizer: piece %d (%q) has type byte but is not of the form <0xXX>", id, p)
			}
		case id == bos || id == eos:
			typ = PieceControl
		case isByte:
			typ = PieceByte
		}
		t.types[id] = int8(typ)
		t.byteOf[id] = -1
		switch typ {
		case PieceByte:
			t.byteOf[id] = int16(b)
			if t.byteID[b] < 0 {
				t.byteID[b] = id
			}
		case PieceUnknown:
			if t.unk < 0 {
				t.unk = id
			}
		case PieceNormal, PieceUserDefined:
			if p == "" {
				continue
			}
			if typ == PieceUserDefined {
				userPieces = append(userPieces, matchPattern{text: strings.ReplaceAll(p, " ", space), id: id})
				continue
			}
			merged = append(merged, int32(id))
		}
	}
	t.charIDs = newPieceIndex(t, merged)
	if len(userPieces) > 0 {
		t.user = newMatcher(userPieces)
	}
	return t, nil
}

// piece returns the stored text of id, which must be in the vocabulary.
func (t *SentencePiece) piece(id int) string { return t.data[t.offs[id]:t.offs[id+1]] }

// pieceIndex finds the id of a piece by its text: an open-addressing hash
// table of ids (plus one; 0 is an empty slot) at most half full, a tenth of
// the memory of a map[string]int of the same pieces.
type pieceIndex struct {
	seed  maphash.Seed
	slots []int32
}

// newPieceIndex indexes the pieces ids of t; of equal pieces, the first
// listed is found.
func newPieceIndex(t *SentencePiece, ids []int32) pieceIndex {
	size := 2
	for size < 2*len(ids) {
		size *= 2
	}
	x := pieceIndex{seed: maphash.MakeSeed(), slots: make([]int32, size)}
	mask := uint64(size - 1)
	for _, id := range ids {
		p := t.piece(int(id))
		for i := maphash.String(x.seed, p) & mask; ; i = (i + 1) & mask {
			if x.slots[i] == 0 {
				x.slots[i] = id + 1
				break
			}
			if t.piece(int(x.slots[i]-1)) == p {
				break
			}
		}
	}
	return x
}

// find returns the id of the piece s.
func (x *pieceIndex) find(t *SentencePiece, s string) (int, bool) {
	mask := uint64(len(x.slots) - 1)
	for i := maphash.String(x.seed, s) & mask; x.slots[i] != 0; i = (i + 1) & mask {
		if id := int(x.slots[i] - 1); t.piece(id) == s {
			return id, true
		}
	}
	return 0, false
}

// findBytes is find for a piece in bytes, without converting them.
func (x *pieceIndex) findBytes(t *SentencePiece, b []byte) (int, bool) {
	mask := uint64(len(x.slots) - 1)
	for i := maphash.Bytes(x.seed, b) & mask; x.slots[i] != 0; i = (i + 1) & mask {
		if id := int(x.slots[i] - 1); t.piece(id) == string(b) {
			return id, true
		}
	}
	return 0, false
}

// parseByteToken reports whether p is a byte piece "<0xXX>" and its value.
func parseByteToken(p string) (byte, bool) {
	if len(p) != 6 || p[:3] != "<0x" || p[5] != '>' {
		return 0, false
	}
	hi, ok1 := hexDigit(p[3])
	lo, ok2 := hexDigit(p[4])
	if !ok1 || !ok2 {
		return 0, false
	}
	return hi<<4 | lo, true
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// Encode returns the ids of text: a dummy-prefix space is prepended (unless
// text is empty), every character becomes its piece or its <0xXX> byte
// pieces, then pieces merge by score.
func (t *SentencePiece) Encode(text string) []int { return t.encode(text, mergeSymbols) }

// mergeFunc is mergeSymbols or, in benchmarks, a slower reference.
type mergeFunc func(ids []int, frozen []bool, rule pairRule) []int

func (t *SentencePiece) encode(text string, merge mergeFunc) []int {
	if text == "" {
		return nil
	}
	norm := t.space + strings.ReplaceAll(text, " ", t.space)
	ids := make([]int, 0, len(norm))
	var frozen []bool
	add := func(id int, freeze bool) {
		if freeze && frozen == nil {
			frozen = make([]bool, len(ids), cap(ids))
		}
		ids = append(ids, id)
		if frozen != nil {
			frozen = append(frozen, freeze)
		}
	}
	for i := 0; i < len(norm); {
		if t.user != nil {
			if id, size := t.user.longestAt(norm, i); size > 0 {
				add(id, true)
				i += size
				continue
			}
		}
		_, size := utf8.DecodeRuneInString(norm[i:])
		ch := norm[i : i+size]
		i += size
		if id, ok := t.charIDs.find(t, ch); ok {
			add(id, false)
			continue
		}
		for j := 0; j < len(ch); j++ {
			switch {
			case t.byteID[ch[j]] >= 0:
				add(t.byteID[ch[j]], true)
			case t.unk >= 0:
				add(t.unk, true)
			}
		}
	}
	var buf []byte
	rule := func(l, r int) (int, float64, bool) {
		buf = append(append(buf[:0], t.piece(l)...), t.piece(r)...)
		id, ok := t.charIDs.findBytes(t, buf)
		if !ok {
			return 0, 0, false
		}
		return id, -float64(t.scores[id]), true
	}
	return merge(ids, frozen, rule)
}

// Decode returns the text of ids.
func (t *SentencePiece) Decode(ids []int) string { return decodeWith(t, ids) }

func (t *SentencePiece) appendToken(dst []byte, prev, id int) []byte {
	if id < 0 || id >= len(t.types) {
		return append(dst, invalidID...)
	}
	if b := t.byteOf[id]; b >= 0 {
		return append(dst, byte(b))
	}
	p := t.piece(id)
	switch t.types[id] {
	case PieceControl:
		// Control pieces (BOS, EOS) are markers, not text.
		return dst
	case PieceUnknown, PieceUnused:
		return append(dst, p...)
	}
	// Normal and user-defined pieces: spaces restored, and the dummy
	// prefix's space dropped at the start.
	if (prev == -1 || prev == t.bos) && t.types[id] == PieceNormal {
		if strings.HasPrefix(p, t.space) {
			p = p[len(t.space):]
		} else if strings.HasPrefix(p, " ") {
			p = p[1:]
		}
	}
	if t.space == " " {
		return append(dst, p...)
	}
	for {
		i := strings.Index(p, t.space)
		if i < 0 {
			return append(dst, p...)
		}
		dst = append(append(dst, p[:i]...), ' ')
		p = p[i+len(t.space):]
	}
}

// BOS returns the beginning-of-sequence id, or -1.
func (t *SentencePiece) BOS() int { return t.bos }

// EOS returns the end-of-sequence id, or -1.
func (t *SentencePiece) EOS() int { return t.eos }

// VocabSize returns the number of pieces.
func (t *SentencePiece) VocabSize() int { return len(t.types) }

// Piece returns the stored text of id (spaces as the vocabulary spells them),
// or "" if id is outside the vocabulary.
func (t *SentencePiece) Piece(id int) string {
	if id < 0 || id >= len(t.types) {
		return ""
	}
	return t.piece(id)
}

// Score returns the merge score of id, or 0 if id is outside the vocabulary.
func (t *SentencePiece) Score(id int) float32 {
	if id < 0 || id >= len(t.scores) {
		return 0
	}
	return t.scores[id]
}

// Type returns the piece type of id (PieceNormal, PieceByte, ...), or 0 if id
// is outside the vocabulary.
func (t *SentencePiece) Type(id int) int {
	if id < 0 || id >= len(t.types) {
		return 0
	}
	return int(t.types[id])
}
