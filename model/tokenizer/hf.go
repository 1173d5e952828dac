package tokenizer

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/golora/golora/internal/fsutil"
)

// BPE is a Hugging Face tokenizer.json tokenizer with model type "BPE": the
// Llama-2 vocabulary with byte fallback, or GPT-2 byte-level BPE.
//
// Encoding follows the Hugging Face tokenizers library: added tokens are cut
// out of the input first (those with "normalized": false before
// normalization, the others after it), the rest is normalized, pre-tokenized
// and merged by rank. Decoding differs from the library's in two ways, both
// so that Decode(Encode(s)) == s: byte-fallback bytes are joined even when
// they do not form valid UTF-8 (the library prints U+FFFD), and with the
// Prepend normalizer the prefix space is removed at the start of every
// segment (after each added token), not only at the start of the output.
//
// Decode(Encode(s)) != s remains where the vocabulary itself loses
// information: U+2581 in the input of a Llama-style vocabulary encodes as a
// space; the Metaspace pre-tokenizer does not prepend its marker to a piece
// that starts with a space, so a leading space is lost; lstrip/rstrip added
// tokens swallow the spaces around them; characters with neither a token
// nor byte-fallback pieces become the unknown token, or are dropped when
// there is none (as SmolLM's vocabulary drops bytes 0x04, 0x06, 0x13, 0x14,
// 0x16 and 0x1D, which it lacks).
type BPE struct {
	vocab        map[string]int
	addedIDs     map[string]int
	merges       map[uint64]bpeMerge
	pieces       []string // token text as stored, "" for unused ids
	text         []string // what each id decodes to
	used         []bool
	startsSpace  []bool // text starts with a space that Decode may strip
	resets       []bool // Decode strips the prefix space of the token after this one
	stripMode    int
	normalizer   []normStep
	pre          []preStep
	rawAdded     *matcher // added tokens matched before normalization
	rawFlags     []addedFlags
	normAdded    *matcher // added tokens matched after normalization
	normFlags    []addedFlags
	byteLevel    bool
	byteCharID   [256]int // byte-level: id of the character standing for each byte
	byteFallback bool
	byteID       [256]int // <0xXX> ids, -1 if missing
	unk          int
	fuseUnk      bool
	ignoreMerges bool
	bos, eos     int

	// For writing GGUF (ByteLevelBPEConfig): the GGUF pre-tokenizer name
	// the tokenizer was built with ("" when read from a tokenizer.json),
	// the BOS id even when it is not added (ggufBOS, -1 for none), and the
	// added tokens marked special (GGUF control tokens).
	preName string
	ggufBOS int
	special map[int]bool
}

var _ Tokenizer = (*BPE)(nil)

// bpeMerge is the result of merging a pair and its rank.
type bpeMerge struct {
	rank int32
	id   int32
}

// Where Decode strips the prefix space that encoding added.
const (
	stripNever      = iota
	stripAtStart    // only on the first token of the output
	stripPerSegment // also after each added token (Prepend normalizer)
)

// addedFlags are the matching options of an added token.
type addedFlags struct {
	lstrip, rstrip, singleWord bool
}

// normStep is one normalizer: prepend a string, replace one, or compose to
// Unicode normalization form C.
type normStep struct {
	prepend   string
	from, to  string
	isPrepend bool
	isReplace bool
	isNFC     bool
}

// LoadHF reads a Hugging Face tokenizer.json. If a tokenizer_config.json is
// in the same directory, its bos_token and eos_token choose BOS and EOS.
func LoadHF(path string) (Tokenizer, error) {
	data, err := fsutil.ReadRegular(path, fsutil.TokenizerLimit)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	cfgPath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	cfg, err := fsutil.ReadRegular(cfgPath, fsutil.ConfigLimit)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := parseHF(data, cfg)
	if err != nil {
		var ce configError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("tokenizer: %s: %w", cfgPath, ce.err)
		}
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return t, nil
}

// ParseHF parses the bytes of a tokenizer.json. BOS and EOS are the first
// of "<s>", "<|begin_of_text|>", "<bos>", "<|endoftext|>" (BOS) and "</s>",
// "<|end_of_text|>", "<eos>", "<|endoftext|>" (EOS) present in the
// vocabulary or added tokens, or -1; ParseHFWithConfig lets a
// tokenizer_config.json choose instead.
func ParseHF(data []byte) (Tokenizer, error) {
	return ParseHFWithConfig(data, nil)
}

// ParseHFWithConfig is ParseHF with the bytes of a tokenizer_config.json
// (nil if there is none), whose bos_token and eos_token, when present, choose
// BOS and EOS (null meaning none).
func ParseHFWithConfig(tokenizerJSON, tokenizerConfigJSON []byte) (Tokenizer, error) {
	t, err := parseHF(tokenizerJSON, tokenizerConfigJSON)
	if err != nil {
		var ce configError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("tokenizer: tokenizer_config.json: %w", ce.err)
		}
		return nil, fmt.Errorf("tokenizer: tokenizer.json: %w", err)
	}
	return t, nil
}

// Encode returns the token ids of text.
func (t *BPE) Encode(text string) []int { return t.encode(text, mergeSymbols) }

func (t *BPE) encode(text string, merge mergeFunc) []int {
	var out []int
	t.splitAdded(text, t.rawAdded, t.rawFlags, true, func(seg string, id int, atStart bool) {
		if id >= 0 {
			out = append(out, id)
			return
		}
		norm := applyNormalizer(t.normalizer, seg)
		t.splitAdded(norm, t.normAdded, t.normFlags, atStart, func(seg string, id int, atStart bool) {
			if id >= 0 {
				out = append(out, id)
				return
			}
			splits := []split{{seg, atStart}}
			for _, p := range t.pre {
				splits = p.apply(splits)
			}
			for _, s := range splits {
				out = t.encodeWord(s.text, out, merge)
			}
		})
	})
	return out
}

// splitAdded cuts s at the added tokens of m, calling emit with each text
// piece (id -1) and each added token (text ""). atStart tells whether s
// begins the input.
func (t *BPE) splitAdded(s string, m *matcher, flags []addedFlags, atStart bool, emit func(seg string, id int, atStart bool)) {
	if s == "" {
		return
	}
	if m == nil {
		emit(s, -1, atStart)
		return
	}
	textStart := 0
	for i := 0; i < len(s); {
		idx := m.indexAt(s, i)
		if idx < 0 {
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
			continue
		}
		start, end := i, i+len(m.pats[idx].text)
		f := flags[idx]
		if f.singleWord && (endsWithWordChar(s[:start]) || startsWithWordChar(s[end:])) {
			i++
			continue
		}
		if f.lstrip {
			for start > textStart {
				r, size := utf8.DecodeLastRuneInString(s[textStart:start])
				if !unicode.IsSpace(r) {
					break
				}
				start -= size
			}
		}
		if f.rstrip {
			for end < len(s) {
				r, size := utf8.DecodeRuneInString(s[end:])
				if !unicode.IsSpace(r) {
					break
				}
				end += size
			}
		}
		if textStart < start {
			emit(s[textStart:start], -1, atStart && textStart == 0)
		}
		emit("", m.pats[idx].id, false)
		textStart, i = end, end
	}
	if textStart < len(s) {
		emit(s[textStart:], -1, atStart && textStart == 0)
	}
}

func isWordChar(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) }

func endsWithWordChar(s string) bool {
	r, size := utf8.DecodeLastRuneInString(s)
	return size > 0 && isWordChar(r)
}

func startsWithWordChar(s string) bool {
	r, size := utf8.DecodeRuneInString(s)
	return size > 0 && isWordChar(r)
}

// encodeWord appends the BPE ids of one pre-tokenized word.
func (t *BPE) encodeWord(word string, out []int, merge mergeFunc) []int {
	if word == "" {
		return out
	}
	if t.byteLevel {
		if t.ignoreMerges {
			chars := byteLevelChars()
			var b strings.Builder
			for i := 0; i < len(word); i++ {
				b.WriteRune(chars[word[i]])
			}
			if id, ok := t.vocab[b.String()]; ok {
				return append(out, id)
			}
		}
		ids := make([]int, 0, len(word))
		var frozen []bool
		for i := 0; i < len(word); i++ {
			switch id := t.byteCharID[word[i]]; {
			case id >= 0:
				ids = append(ids, id)
				if frozen != nil {
					frozen = append(frozen, false)
				}
			case t.unk >= 0:
				if frozen == nil {
					frozen = make([]bool, len(ids), len(word))
				}
				if !(t.fuseUnk && len(ids) > 0 && ids[len(ids)-1] == t.unk && frozen[len(ids)-1]) {
					ids = append(ids, t.unk)
					frozen = append(frozen, true)
				}
			}
		}
		return append(out, merge(ids, frozen, t.rankRule)...)
	}
	if t.ignoreMerges {
		if id, ok := t.vocab[word]; ok {
			return append(out, id)
		}
	}
	ids := make([]int, 0, len(word))
	var frozen []bool
	addFrozen := func(id int) {
		if frozen == nil {
			frozen = make([]bool, len(ids), cap(ids))
		}
		if t.fuseUnk && id == t.unk && len(ids) > 0 && ids[len(ids)-1] == t.unk {
			return
		}
		ids = append(ids, id)
		frozen = append(frozen, true)
	}
	for i := 0; i < len(word); {
		_, size := utf8.DecodeRuneInString(word[i:])
		ch := word[i : i+size]
		i += size
		if id, ok := t.vocab[ch]; ok {
			ids = append(ids, id)
			if frozen != nil {
				frozen = append(frozen, false)
			}
			continue
		}
		if t.byteFallback && t.hasBytes(ch) {
			for j := 0; j < len(ch); j++ {
				// Byte pieces never merge in practice, but Hugging Face lets
				// them if the merges say so.
				ids = append(ids, t.byteID[ch[j]])
				if frozen != nil {
					frozen = append(frozen, false)
				}
			}
			continue
		}
		if t.unk >= 0 {
			addFrozen(t.unk)
		}
	}
	return append(out, merge(ids, frozen, t.rankRule)...)
}

func (t *BPE) hasBytes(ch string) bool {
	for j := 0; j < len(ch); j++ {
		if t.byteID[ch[j]] < 0 {
			return false
		}
	}
	return true
}

func (t *BPE) rankRule(l, r int) (int, float64, bool) {
	m, ok := t.merges[pairKey(l, r)]
	return int(m.id), float64(m.rank), ok
}

// Decode returns the text of ids.
func (t *BPE) Decode(ids []int) string { return decodeWith(t, ids) }

func (t *BPE) appendToken(dst []byte, prev, id int) []byte {
	if id < 0 || id >= len(t.text) {
		return append(dst, invalidID...)
	}
	s := t.text[id]
	if t.startsSpace[id] {
		switch t.stripMode {
		case stripAtStart:
			if prev == -1 {
				s = s[1:]
			}
		case stripPerSegment:
			if prev == -1 || (prev >= 0 && prev < len(t.resets) && t.resets[prev]) {
				s = s[1:]
			}
		}
	}
	return append(dst, s...)
}

// BOS returns the beginning-of-sequence id, or -1.
func (t *BPE) BOS() int { return t.bos }

// EOS returns the end-of-sequence id, or -1.
func (t *BPE) EOS() int { return t.eos }

// VocabSize returns one more than the largest id of the vocabulary and the
// added tokens.
func (t *BPE) VocabSize() int { return len(t.pieces) }

// Piece returns the stored text of id, or "" if id is not used.
func (t *BPE) Piece(id int) string {
	if id < 0 || id >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// TokenID returns the id of a token or added token by its stored text.
func (t *BPE) TokenID(token string) (int, bool) { return t.id(token) }
