package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// configError marks errors that concern tokenizer_config.json.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

// hfFile is the part of tokenizer.json that this package reads.
type hfFile struct {
	AddedTokens  []hfAddedToken  `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Decoder      json.RawMessage `json:"decoder"`
	Model        json.RawMessage `json:"model"`
}

type hfAddedToken struct {
	ID         *int    `json:"id"`
	Content    *string `json:"content"`
	SingleWord bool    `json:"single_word"`
	LStrip     bool    `json:"lstrip"`
	RStrip     bool    `json:"rstrip"`
	Normalized *bool   `json:"normalized"`
	Special    bool    `json:"special"`
}

type hfModel struct {
	Type                    *string         `json:"type"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	UnkToken                *string         `json:"unk_token"`
	ByteFallback            bool            `json:"byte_fallback"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	IgnoreMerges            bool            `json:"ignore_merges"`
}

// component is the part shared by normalizers, pre-tokenizers and decoders.
type component struct {
	Type string `json:"type"`
}

func isNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

func parseHF(data, cfg []byte) (*BPE, error) {
	f, m, err := decodeHF(data)
	if err != nil {
		return nil, err
	}
	t, err := newVocabBPE(m, len(m.Vocab)+len(f.AddedTokens))
	if err != nil {
		return nil, err
	}
	if t.normalizer, err = parseNormalizer(f.Normalizer, "normalizer"); err != nil {
		return nil, err
	}
	if t.pre, err = parsePreTokenizer(f.PreTokenizer, "pre_tokenizer"); err != nil {
		return nil, err
	}
	for _, p := range t.pre {
		if _, ok := p.(byteLevelStep); ok {
			t.byteLevel = true
		}
	}
	isAdded, err := t.addTokens(f.AddedTokens)
	if err != nil {
		return nil, err
	}
	chars := byteLevelChars()
	if err := t.setupBytes(m, chars); err != nil {
		return nil, err
	}
	if err := t.parseMerges(m.Merges); err != nil {
		return nil, err
	}
	if err := t.setupDecoding(f.Decoder, chars, isAdded); err != nil {
		return nil, err
	}
	if err := t.chooseSpecial(cfg); err != nil {
		return nil, err
	}
	return t, nil
}

// decodeHF decodes a tokenizer.json and checks that its model is a BPE
// golora supports.
func decodeHF(data []byte) (*hfFile, *hfModel, error) {
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, nil, fmt.Errorf("not a tokenizer.json: %w", err)
	}
	if isNull(f.Model) {
		return nil, nil, errors.New("no model")
	}
	var m hfModel
	if err := json.Unmarshal(f.Model, &m); err != nil {
		return nil, nil, fmt.Errorf("model: %w", err)
	}
	switch {
	case m.Type == nil && isNull(m.Merges):
		return nil, nil, errors.New("model has no type and no merges")
	case m.Type != nil && *m.Type != "BPE":
		return nil, nil, fmt.Errorf("model type %q is not supported (only BPE)", *m.Type)
	case m.Vocab == nil:
		return nil, nil, errors.New("model.vocab is missing")
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return nil, nil, fmt.Errorf("model.continuing_subword_prefix %q is not supported", *m.ContinuingSubwordPrefix)
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, nil, fmt.Errorf("model.end_of_word_suffix %q is not supported", *m.EndOfWordSuffix)
	}
	return &f, &m, nil
}

// newVocabBPE returns a BPE with the model's vocabulary in a table of size
// ids (vocabulary and added tokens).
func newVocabBPE(m *hfModel, size int) (*BPE, error) {
	t := &BPE{vocab: m.Vocab, addedIDs: make(map[string]int), special: make(map[int]bool), unk: -1, bos: -1, eos: -1, ggufBOS: -1,
		byteFallback: m.ByteFallback, fuseUnk: m.FuseUnk, ignoreMerges: m.IgnoreMerges}
	for tok, id := range m.Vocab {
		if id < 0 || id >= size {
			return nil, fmt.Errorf("model.vocab: %q has id %d, outside 0..%d (the number of vocab and added tokens)", tok, id, size-1)
		}
	}
	t.pieces = make([]string, size)
	t.used = make([]bool, size)
	for tok, id := range m.Vocab {
		if t.used[id] {
			return nil, fmt.Errorf("model.vocab: id %d is used by both %q and %q", id, t.pieces[id], tok)
		}
		t.pieces[id], t.used[id] = tok, true
	}
	return t, nil
}

// addTokens enters the added tokens into t's table and matchers (it needs
// the normalizer) and trims the table after the largest id. isAdded flags
// the added ids.
func (t *BPE) addTokens(added []hfAddedToken) (isAdded []bool, err error) {
	size := len(t.pieces)
	isAdded = make([]bool, size)
	maxID := -1
	for id, used := range t.used {
		if used {
			maxID = id
		}
	}
	var rawPats, normPats []matchPattern
	for i, a := range added {
		where := fmt.Sprintf("added_tokens[%d]", i)
		if a.ID == nil || a.Content == nil {
			return nil, fmt.Errorf("%s: needs both id and content", where)
		}
		id, content := *a.ID, *a.Content
		if content == "" {
			return nil, fmt.Errorf("%s: empty content", where)
		}
		if id < 0 || id >= size {
			return nil, fmt.Errorf("%s (%q): id %d outside 0..%d", where, content, id, size-1)
		}
		if t.used[id] && t.pieces[id] != content {
			return nil, fmt.Errorf("%s: id %d is %q, but the vocabulary has %q there", where, id, content, t.pieces[id])
		}
		t.pieces[id], t.used[id], isAdded[id] = content, true, true
		t.addedIDs[content] = id
		if a.Special {
			t.special[id] = true
		}
		maxID = max(maxID, id)
		normalized := !a.Special
		if a.Normalized != nil {
			normalized = *a.Normalized
		}
		flags := addedFlags{lstrip: a.LStrip, rstrip: a.RStrip, singleWord: a.SingleWord}
		if normalized {
			normPats = append(normPats, matchPattern{text: applyNormalizer(t.normalizer, content), id: id})
			t.normFlags = append(t.normFlags, flags)
		} else {
			rawPats = append(rawPats, matchPattern{text: content, id: id})
			t.rawFlags = append(t.rawFlags, flags)
		}
	}
	if len(rawPats) > 0 {
		t.rawAdded = newMatcher(rawPats)
	}
	if len(normPats) > 0 {
		t.normAdded = newMatcher(normPats)
	}
	if maxID < 0 {
		return nil, errors.New("empty vocabulary")
	}
	// Trim ids past the largest (left by duplicated added tokens).
	t.pieces, t.used, isAdded = t.pieces[:maxID+1], t.used[:maxID+1], isAdded[:maxID+1]
	return isAdded, nil
}

// setupBytes finds the unknown token and the ids of the byte tokens: the
// <0xNN> fallback pieces and, for byte-level models, the piece of each
// byte's character in chars.
func (t *BPE) setupBytes(m *hfModel, chars [256]rune) error {
	if m.UnkToken != nil {
		id, ok := t.id(*m.UnkToken)
		if !ok {
			return fmt.Errorf("model.unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		t.unk = id
	}
	for b := range t.byteID {
		t.byteID[b] = -1
		if id, ok := m.Vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			t.byteID[b] = id
		}
	}
	if t.byteLevel {
		for b, r := range chars {
			// Some vocabularies lack a few bytes (SmolLM lacks 0x04, for one);
			// like Hugging Face, Encode then drops them or uses unk_token.
			t.byteCharID[b] = -1
			if id, ok := m.Vocab[string(r)]; ok {
				t.byteCharID[b] = id
			}
		}
	}
	return nil
}

// id looks a token up among added tokens and the vocabulary.
func (t *BPE) id(tok string) (int, bool) {
	if id, ok := t.addedIDs[tok]; ok {
		return id, true
	}
	id, ok := t.vocab[tok]
	return id, ok
}

func (t *BPE) parseMerges(raw json.RawMessage) error {
	if isNull(raw) {
		t.merges = make(map[uint64]bpeMerge)
		return nil
	}
	// A tokenizer.json writes all merges in one of the two forms: decoding
	// the array whole as that form is several times faster than decoding
	// its 280,000 entries (Llama 3's) one by one. A mix of the two, or a bad
	// entry, goes entry by entry, which names it.
	var lines []string
	if json.Unmarshal(raw, &lines) == nil {
		t.merges = make(map[uint64]bpeMerge, len(lines))
		for rank, line := range lines {
			if err := t.addMergeLine("model.merges", rank, line); err != nil {
				return err
			}
		}
		return nil
	}
	var pairs [][]string
	if json.Unmarshal(raw, &pairs) == nil {
		t.merges = make(map[uint64]bpeMerge, len(pairs))
		for rank, p := range pairs {
			if err := t.addMergePair(rank, p); err != nil {
				return err
			}
		}
		return nil
	}
	var merges []json.RawMessage
	if err := json.Unmarshal(raw, &merges); err != nil {
		return fmt.Errorf("model.merges: %w", err)
	}
	t.merges = make(map[uint64]bpeMerge, len(merges))
	for rank, raw := range merges {
		var line string
		var pair []string
		trimmed := bytes.TrimSpace(raw)
		var err error
		switch {
		case len(trimmed) > 0 && trimmed[0] == '"' && json.Unmarshal(trimmed, &line) == nil:
			err = t.addMergeLine("model.merges", rank, line)
		case len(trimmed) > 0 && trimmed[0] == '[' && json.Unmarshal(trimmed, &pair) == nil:
			err = t.addMergePair(rank, pair)
		default:
			err = fmt.Errorf("model.merges[%d]: want \"a b\" or [\"a\", \"b\"], got %.40s", rank, raw)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// addMergeLine adds merge rank given as "a b", entry rank of the list key
// (for errors): a tokenizer.json's model.merges or a GGUF's
// tokenizer.ggml.merges.
func (t *BPE) addMergeLine(key string, rank int, line string) error {
	a, b, ok := strings.Cut(line, " ")
	if !ok || strings.Contains(b, " ") {
		return fmt.Errorf("%s[%d] %q: want two tokens separated by one space", key, rank, line)
	}
	if err := t.addMerge(rank, a, b); err != nil {
		return fmt.Errorf("%s[%d]: %w", key, rank, err)
	}
	return nil
}

// addMergePair adds merge rank of a tokenizer.json given as ["a", "b"].
func (t *BPE) addMergePair(rank int, pair []string) error {
	if len(pair) != 2 {
		return fmt.Errorf("model.merges[%d]: want a pair of tokens, got %d", rank, len(pair))
	}
	if err := t.addMerge(rank, pair[0], pair[1]); err != nil {
		return fmt.Errorf("model.merges[%d]: %w", rank, err)
	}
	return nil
}

// addMerge records that a and b merge with the given rank; a repeated pair
// keeps its first rank.
func (t *BPE) addMerge(rank int, a, b string) error {
	ia, okA := t.vocab[a]
	ib, okB := t.vocab[b]
	im, okM := t.vocab[a+b]
	switch {
	case !okA:
		return fmt.Errorf("%q is not in the vocabulary", a)
	case !okB:
		return fmt.Errorf("%q is not in the vocabulary", b)
	case !okM:
		return fmt.Errorf("merged token %q is not in the vocabulary", a+b)
	}
	k := pairKey(ia, ib)
	if _, dup := t.merges[k]; !dup {
		t.merges[k] = bpeMerge{rank: int32(rank), id: int32(im)}
	}
	return nil
}

// parseSplit accepts a Split pre-tokenizer whose regex is one of the
// patterns this package implements by hand, isolating each match.
func parseSplit(raw json.RawMessage) (preStep, error) {
	var sp struct {
		Pattern struct {
			String *string `json:"String"`
			Regex  *string `json:"Regex"`
		} `json:"pattern"`
		Behavior string `json:"behavior"`
		Invert   bool   `json:"invert"`
	}
	if err := json.Unmarshal(raw, &sp); err != nil {
		return nil, fmt.Errorf("Split: %w", err)
	}
	if sp.Behavior != "Isolated" || sp.Invert {
		return nil, fmt.Errorf("Split with behavior %q and invert %v is not supported (only Isolated, not inverted)", sp.Behavior, sp.Invert)
	}
	if sp.Pattern.Regex == nil {
		return nil, errors.New("Split needs a pattern.Regex")
	}
	switch *sp.Pattern.Regex {
	case llama3Pattern:
		return splitStep{maxDigits: 3}, nil
	case qwen2Pattern:
		return splitStep{maxDigits: 1}, nil
	}
	return nil, fmt.Errorf("Split pattern %q is not supported (only the Llama-3 and Qwen2 patterns)", *sp.Pattern.Regex)
}

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// parseSequence parses a Sequence component: the list under field, each
// element parsed by parse and the steps concatenated.
func parseSequence[T any](raw json.RawMessage, where, field string, parse func(json.RawMessage, string) ([]T, error)) ([]T, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(obj[field], &items); obj[field] != nil && err != nil {
		return nil, fmt.Errorf("%s.%s: %w", where, field, err)
	}
	var steps []T
	for i, item := range items {
		sub, err := parse(item, fmt.Sprintf("%s.%s[%d]", where, field, i))
		if err != nil {
			return nil, err
		}
		steps = append(steps, sub...)
	}
	return steps, nil
}

// parseNormalizer accepts Prepend and Replace (with a string pattern), alone
// or in a Sequence, as Llama-2 tokenizer.json files use them, and NFC, which
// Qwen2's uses.
func parseNormalizer(raw json.RawMessage, where string) ([]normStep, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	switch c.Type {
	case "Sequence":
		return parseSequence(raw, where, "normalizers", parseNormalizer)
	case "NFC":
		return []normStep{{isNFC: true}}, nil
	case "Prepend":
		var p struct {
			Prepend *string `json:"prepend"`
		}
		if err := json.Unmarshal(raw, &p); err != nil || p.Prepend == nil {
			return nil, fmt.Errorf("%s: Prepend needs a string \"prepend\"", where)
		}
		return []normStep{{isPrepend: true, prepend: *p.Prepend}}, nil
	case "Replace":
		from, to, err := parseReplace(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		return []normStep{{isReplace: true, from: from, to: to}}, nil
	case "":
		return nil, fmt.Errorf("%s: no type", where)
	}
	return nil, fmt.Errorf("%s: normalizer type %q is not supported (only NFC, Prepend, Replace and Sequence)", where, c.Type)
}

func parseReplace(raw json.RawMessage) (from, to string, err error) {
	var r struct {
		Pattern struct {
			String *string `json:"String"`
			Regex  *string `json:"Regex"`
		} `json:"pattern"`
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return "", "", fmt.Errorf("Replace: %w", err)
	}
	switch {
	case r.Pattern.Regex != nil:
		return "", "", fmt.Errorf("Replace with a Regex pattern (%q) is not supported", *r.Pattern.Regex)
	case r.Pattern.String == nil || *r.Pattern.String == "" || r.Content == nil:
		return "", "", errors.New("Replace needs a non-empty pattern.String and a content")
	}
	return *r.Pattern.String, *r.Content, nil
}

func applyNormalizer(steps []normStep, s string) string {
	for _, n := range steps {
		switch {
		case n.isPrepend:
			if s != "" {
				s = n.prepend + s
			}
		case n.isReplace:
			s = strings.ReplaceAll(s, n.from, n.to)
		case n.isNFC:
			s = norm.NFC.String(s)
		}
	}
	return s
}

// parsePreTokenizer accepts Metaspace, ByteLevel, Digits and the Split
// patterns of Llama-3 and Qwen2, alone or in a Sequence.
func parsePreTokenizer(raw json.RawMessage, where string) ([]preStep, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	switch c.Type {
	case "Sequence":
		return parseSequence(raw, where, "pretokenizers", parsePreTokenizer)
	case "Metaspace":
		m, err := parseMetaspace(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		return []preStep{m}, nil
	case "ByteLevel":
		b := struct {
			AddPrefixSpace bool  `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}{}
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		return []preStep{byteLevelStep{addPrefixSpace: b.AddPrefixSpace, useRegex: b.UseRegex == nil || *b.UseRegex}}, nil
	case "Split":
		step, err := parseSplit(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		return []preStep{step}, nil
	case "Digits":
		var d struct {
			IndividualDigits bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		return []preStep{digitsStep{individual: d.IndividualDigits}}, nil
	case "":
		return nil, fmt.Errorf("%s: no type", where)
	}
	return nil, fmt.Errorf("%s: pre-tokenizer type %q is not supported (only Metaspace, ByteLevel, Digits, Split and Sequence)", where, c.Type)
}

func parseMetaspace(raw json.RawMessage) (metaspaceStep, error) {
	var m struct {
		Replacement    *string `json:"replacement"`
		AddPrefixSpace *bool   `json:"add_prefix_space"`
		PrependScheme  *string `json:"prepend_scheme"`
		Split          *bool   `json:"split"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return metaspaceStep{}, fmt.Errorf("Metaspace: %w", err)
	}
	if m.Replacement == nil || utf8.RuneCountInString(*m.Replacement) != 1 {
		return metaspaceStep{}, errors.New("Metaspace needs a one-character replacement")
	}
	s := metaspaceStep{replacement: *m.Replacement, prepend: "always", split: m.Split == nil || *m.Split}
	switch {
	case m.PrependScheme != nil:
		switch *m.PrependScheme {
		case "always", "first", "never":
			s.prepend = *m.PrependScheme
		default:
			return metaspaceStep{}, fmt.Errorf("Metaspace prepend_scheme %q is not always, first or never", *m.PrependScheme)
		}
	case m.AddPrefixSpace != nil && !*m.AddPrefixSpace:
		s.prepend = "never"
	}
	return s, nil
}

// setupDecoding checks that the decoder is one this package can reproduce
// and fills the per-id text that Decode concatenates.
func (t *BPE) setupDecoding(raw json.RawMessage, chars [256]rune, isAdded []bool) error {
	if isNull(raw) {
		return errors.New("no decoder")
	}
	var d decoderSteps
	if err := d.walk(raw, "decoder"); err != nil {
		return err
	}
	if d.byteLevel != t.byteLevel {
		return errors.New("decoder and pre_tokenizer disagree: ByteLevel must be in both or in neither")
	}
	t.chooseStrip(d.strip)
	t.fillText(d.replacements, chars, isAdded)
	return nil
}

// decoderSteps is what a tokenizer.json decoder does, in the terms Decode
// reproduces it.
type decoderSteps struct {
	replacements [][2]string // applied in order to non-byte pieces
	strip        bool        // a leading space is stripped
	byteLevel    bool
}

// walk reads the decoder (or one step of a Sequence) at where.
func (d *decoderSteps) walk(raw json.RawMessage, where string) error {
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	switch c.Type {
	case "Sequence":
		var s struct {
			Decoders []json.RawMessage `json:"decoders"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		for i, sub := range s.Decoders {
			if err := d.walk(sub, fmt.Sprintf("%s.decoders[%d]", where, i)); err != nil {
				return err
			}
		}
	case "Replace":
		from, to, err := parseReplace(raw)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		d.replacements = append(d.replacements, [2]string{from, to})
	case "Metaspace":
		m, err := parseMetaspace(raw)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		d.replacements = append(d.replacements, [2]string{m.replacement, " "})
		d.strip = d.strip || m.prepend != "never"
	case "Strip":
		var s struct {
			Content string `json:"content"`
			Start   int    `json:"start"`
			Stop    int    `json:"stop"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if s.Content != " " || s.Start > 1 || s.Stop != 0 {
			return fmt.Errorf("%s: Strip of %q start %d stop %d is not supported (only one leading space)", where, s.Content, s.Start, s.Stop)
		}
		d.strip = d.strip || s.Start == 1
	case "ByteLevel":
		d.byteLevel = true
	case "ByteFallback", "Fuse":
		// Byte pieces are turned into bytes whenever the model has byte
		// fallback; joining tokens is what Decode does anyway.
	case "":
		return fmt.Errorf("%s: no type", where)
	default:
		return fmt.Errorf("%s: decoder type %q is not supported", where, c.Type)
	}
	return nil
}

// chooseStrip sets where Decode strips a leading space: nowhere, at the
// start of each segment when the normalizer prepends one to each, or at
// the start of the text.
func (t *BPE) chooseStrip(strip bool) {
	prependEach := false
	for _, n := range t.normalizer {
		prependEach = prependEach || (n.isPrepend && n.prepend != "")
	}
	switch {
	case !strip:
		t.stripMode = stripNever
	case prependEach:
		t.stripMode = stripPerSegment
	default:
		t.stripMode = stripAtStart
	}
}

// fillText sets the text Decode emits for each id: added tokens as they
// are, byte-level pieces mapped back to bytes, byte-fallback pieces as their
// byte, other pieces with the decoder's replacements applied.
func (t *BPE) fillText(replacements [][2]string, chars [256]rune, isAdded []bool) {
	var inverse map[rune]byte
	if t.byteLevel {
		inverse = make(map[rune]byte, 256)
		for b, r := range chars {
			inverse[r] = byte(b)
		}
	}
	n := len(t.pieces)
	t.text = make([]string, n)
	t.startsSpace = make([]bool, n)
	t.resets = make([]bool, n)
	rawAdded := make(map[int]bool)
	if t.rawAdded != nil {
		for _, p := range t.rawAdded.pats {
			rawAdded[p.id] = true
		}
	}
	for id, p := range t.pieces {
		switch {
		case !t.used[id]:
			t.text[id] = invalidID
		case isAdded[id]:
			t.text[id] = p
			t.resets[id] = rawAdded[id]
		case t.byteLevel:
			var b strings.Builder
			for _, r := range p {
				if c, ok := inverse[r]; ok {
					b.WriteByte(c)
				} else {
					b.WriteRune(r)
				}
			}
			t.text[id] = b.String()
		default:
			if v, ok := parseByteToken(p); ok && t.byteFallback && t.byteID[v] == id {
				t.text[id] = string([]byte{v})
				continue
			}
			s := p
			for _, r := range replacements {
				s = strings.ReplaceAll(s, r[0], r[1])
			}
			t.text[id] = s
			t.startsSpace[id] = strings.HasPrefix(s, " ")
		}
	}
}

// chooseSpecial sets BOS and EOS from tokenizer_config.json or known names.
func (t *BPE) chooseSpecial(cfg []byte) error {
	find := func(names ...string) int {
		for _, n := range names {
			if id, ok := t.id(n); ok {
				return id
			}
		}
		return -1
	}
	t.bos = find("<s>", "<|begin_of_text|>", "<bos>", "<|endoftext|>")
	t.eos = find("</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>")
	if cfg == nil {
		return nil
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(cfg, &c); err != nil {
		return configError{fmt.Errorf("not a JSON object: %w", err)}
	}
	for _, s := range []struct {
		key string
		dst *int
	}{{"bos_token", &t.bos}, {"eos_token", &t.eos}} {
		raw, ok := c[s.key]
		if !ok {
			continue
		}
		if isNull(raw) {
			*s.dst = -1
			continue
		}
		var name string
		if json.Unmarshal(raw, &name) != nil {
			var obj struct {
				Content *string `json:"content"`
			}
			if json.Unmarshal(raw, &obj) != nil || obj.Content == nil {
				return configError{fmt.Errorf("%s: want a string or an object with \"content\", got %.60s", s.key, raw)}
			}
			name = *obj.Content
		}
		id, ok := t.id(name)
		if !ok {
			return configError{fmt.Errorf("%s %q is not in the vocabulary", s.key, name)}
		}
		*s.dst = id
	}
	return nil
}
