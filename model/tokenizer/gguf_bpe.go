package tokenizer

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
)

// GGUF token types (tokenizer.ggml.token_type), as llama.cpp numbers them.
const (
	ggufTokenNormal      = 1
	ggufTokenUnknown     = 2
	ggufTokenControl     = 3
	ggufTokenUserDefined = 4
	ggufTokenUnused      = 5
	ggufTokenByte        = 6
)

// ByteLevelBPEConfig holds the tokenizer metadata of a GGUF file whose
// tokenizer.ggml.model is "gpt2" (Llama-3, Qwen2, SmolLM and other
// byte-level BPE vocabularies), as plain values.
type ByteLevelBPEConfig struct {
	// Tokens is tokenizer.ggml.tokens: the text of each id, in the GPT-2
	// byte-to-character alphabet for normal tokens.
	Tokens []string
	// Types is tokenizer.ggml.token_type, one per token, or nil when the
	// file has none (all tokens normal). Control and user-defined tokens are
	// matched whole in the input, like Hugging Face's added tokens; unused
	// tokens are never produced by Encode.
	Types []int32
	// Merges is tokenizer.ggml.merges: "left right", highest priority first.
	Merges []string
	// Pre is tokenizer.ggml.pre, the pre-tokenizer's name: "llama-bpe"
	// (also "llama3", "llama-v3"), "qwen2" (also "deepseek-r1-qwen"),
	// "smollm", or "gpt-2" (also "phi-2").
	Pre string
	// BOS and EOS are tokenizer.ggml.bos_token_id and eos_token_id, -1 for
	// none.
	BOS, EOS int
	// AddBOS is tokenizer.ggml.add_bos_token. BOS() reports -1 when it is
	// false, because the callers of this package prepend BOS() whenever it
	// is not -1.
	AddBOS bool
}

// preTokenizer is what a GGUF pre-tokenizer name stands for.
type preTokenizer struct {
	steps        []preStep
	normalizer   []normStep
	ignoreMerges bool
}

// ggufPreTokenizer maps tokenizer.ggml.pre to the pipeline of the model's
// Hugging Face tokenizer.json, which llama.cpp's pre-tokenizer of that name
// reproduces. Qwen2's NFC normalizer is kept although llama.cpp skips it: the
// ids then match the tokenizer the model was trained with.
func ggufPreTokenizer(name string) (preTokenizer, error) {
	byteLevel := byteLevelStep{}
	switch name {
	case "llama-bpe", "llama3", "llama-v3":
		return preTokenizer{steps: []preStep{splitStep{maxDigits: 3}, byteLevel}, ignoreMerges: true}, nil
	case "qwen2", "deepseek-r1-qwen":
		return preTokenizer{steps: []preStep{splitStep{maxDigits: 1}, byteLevel}, normalizer: []normStep{{isNFC: true}}}, nil
	case "smollm":
		return preTokenizer{steps: []preStep{digitsStep{individual: true}, byteLevelStep{useRegex: true}}}, nil
	case "gpt-2", "phi-2":
		return preTokenizer{steps: []preStep{byteLevelStep{useRegex: true}}}, nil
	case "":
		return preTokenizer{}, errors.New("tokenizer.ggml.pre is missing; the pre-tokenizer of a gpt2 vocabulary must be named")
	}
	return preTokenizer{}, fmt.Errorf("tokenizer.ggml.pre %q is not supported (known: llama-bpe, llama3, llama-v3, qwen2, deepseek-r1-qwen, smollm, gpt-2, phi-2)", name)
}

// NewByteLevelBPE builds the byte-level BPE tokenizer of a GGUF file whose
// tokenizer.ggml.model is "gpt2". Encoding matches the Hugging Face
// tokenizer.json of the same model: control and user-defined tokens are cut
// out first, then the named pre-tokenizer splits the text and merges apply
// by rank.
func NewByteLevelBPE(c ByteLevelBPEConfig) (*BPE, error) {
	t, err := newByteLevelBPE(c)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: gguf: %w", err)
	}
	return t, nil
}

func newByteLevelBPE(c ByteLevelBPEConfig) (*BPE, error) {
	n := len(c.Tokens)
	if n == 0 {
		return nil, errors.New("tokenizer.ggml.tokens is empty")
	}
	if c.Types != nil && len(c.Types) != n {
		return nil, fmt.Errorf("tokenizer.ggml.token_type has %d entries for %d tokens", len(c.Types), n)
	}
	pre, err := ggufPreTokenizer(c.Pre)
	if err != nil {
		return nil, err
	}
	for _, s := range []struct {
		key string
		id  int
	}{{"tokenizer.ggml.bos_token_id", c.BOS}, {"tokenizer.ggml.eos_token_id", c.EOS}} {
		if s.id < -1 || s.id >= n {
			return nil, fmt.Errorf("%s %d is outside the %d tokens", s.key, s.id, n)
		}
	}
	t := &BPE{
		vocab:        make(map[string]int, n),
		addedIDs:     make(map[string]int),
		pieces:       make([]string, n),
		used:         make([]bool, n),
		normalizer:   pre.normalizer,
		pre:          pre.steps,
		byteLevel:    true,
		unk:          -1,
		bos:          -1,
		eos:          c.EOS,
		ignoreMerges: pre.ignoreMerges,
		preName:      c.Pre,
		ggufBOS:      c.BOS,
		special:      make(map[int]bool),
	}
	if c.AddBOS {
		t.bos = c.BOS
	}
	isAdded := make([]bool, n)
	var pats []matchPattern
	for id, tok := range c.Tokens {
		typ := int32(ggufTokenNormal)
		if c.Types != nil {
			typ = c.Types[id]
		}
		switch typ {
		case ggufTokenNormal, ggufTokenUnknown, ggufTokenByte:
			if prev, dup := t.vocab[tok]; dup {
				return nil, fmt.Errorf("%s: same text as token %d", ggufTokenWhere(id, tok), prev)
			}
			t.vocab[tok] = id
			if typ == ggufTokenUnknown {
				t.unk = id
			}
		case ggufTokenControl, ggufTokenUserDefined:
			if tok == "" {
				return nil, fmt.Errorf("%s: empty %s token", ggufTokenWhere(id, tok), map[int32]string{ggufTokenControl: "control", ggufTokenUserDefined: "user-defined"}[typ])
			}
			if prev, dup := t.addedIDs[tok]; dup {
				return nil, fmt.Errorf("%s: same text as token %d", ggufTokenWhere(id, tok), prev)
			}
			t.addedIDs[tok] = id
			isAdded[id] = true
			if typ == ggufTokenControl {
				t.special[id] = true
			}
			pats = append(pats, matchPattern{text: tok, id: id})
		case ggufTokenUnused:
			t.pieces[id] = tok
			continue
		default:
			return nil, fmt.Errorf("%s: token type %d is not one of 1..6", ggufTokenWhere(id, tok), typ)
		}
		t.pieces[id], t.used[id] = tok, true
	}
	if len(pats) > 0 {
		// Hugging Face matches the longest added token; the matcher does too,
		// whatever the order, but a fixed order keeps errors reproducible.
		sort.SliceStable(pats, func(i, j int) bool { return pats[i].id < pats[j].id })
		t.rawAdded = newMatcher(pats)
		t.rawFlags = make([]addedFlags, len(pats))
	}
	chars := byteLevelChars()
	for b, r := range chars {
		t.byteCharID[b] = -1
		if id, ok := t.vocab[string(r)]; ok {
			t.byteCharID[b] = id
		}
	}
	for i := range t.byteID {
		t.byteID[i] = -1
	}
	t.merges = make(map[uint64]bpeMerge, len(c.Merges))
	for rank, m := range c.Merges {
		if err := t.addMergeLine("tokenizer.ggml.merges", rank, m); err != nil {
			return nil, err
		}
	}
	if err := t.setupDecoding(json.RawMessage(`{"type":"ByteLevel"}`), chars, isAdded); err != nil {
		return nil, err
	}
	return t, nil
}

// ggufTokenWhere names token id of a GGUF vocabulary in an error. It is
// called only on an error: a Sprintf per token cost a quarter of the time
// to build Llama-3's 128,256.
func ggufTokenWhere(id int, tok string) string {
	return fmt.Sprintf("tokenizer.ggml.tokens[%d] (%q)", id, tok)
}

// ggufPreNames are the pre-tokenizer names ByteLevelBPEConfig recognizes a
// tokenizer.json's pipeline as, in the order it tries them.
var ggufPreNames = []string{"llama-bpe", "qwen2", "smollm", "gpt-2"}

// ByteLevelBPEConfig returns the GGUF "gpt2" metadata of a byte-level BPE
// tokenizer, the inverse of NewByteLevelBPE: for one built by
// NewByteLevelBPE, the configuration it was built from; for one read from a
// tokenizer.json, its vocabulary, added tokens (control tokens when marked
// special, user-defined otherwise), merges by rank, BOS (added when there is
// one) and EOS, and the name of the GGUF pre-tokenizer whose pipeline is the
// file's (an error when none is). Ids the vocabulary does not use, and ids
// up to vocab when the model's embedding has more rows than the tokenizer
// has tokens (Qwen's), become unused tokens "[PAD<id>]", as llama.cpp's
// converter writes them.
func (t *BPE) ByteLevelBPEConfig(vocab int) (ByteLevelBPEConfig, error) {
	var c ByteLevelBPEConfig
	if !t.byteLevel || t.byteFallback {
		return c, errors.New("tokenizer: not a byte-level BPE tokenizer")
	}
	if vocab < len(t.pieces) {
		return c, fmt.Errorf("tokenizer: %d tokens do not fit a vocabulary of %d", len(t.pieces), vocab)
	}
	c.Pre = t.preName
	if c.Pre == "" {
		for _, name := range ggufPreNames {
			p, _ := ggufPreTokenizer(name)
			if reflect.DeepEqual(p.steps, t.pre) && len(p.normalizer) == len(t.normalizer) &&
				(len(p.normalizer) == 0 || reflect.DeepEqual(p.normalizer, t.normalizer)) && p.ignoreMerges == t.ignoreMerges {
				c.Pre = name
				break
			}
		}
		if c.Pre == "" {
			return c, errors.New("tokenizer: the pre-tokenizer and normalizer are none of GGUF's llama-bpe, qwen2, smollm, gpt-2")
		}
	}
	c.Tokens = make([]string, vocab)
	c.Types = make([]int32, vocab)
	for id := range vocab {
		switch {
		case id >= len(t.pieces) || !t.used[id]:
			c.Tokens[id], c.Types[id] = fmt.Sprintf("[PAD%d]", id), ggufTokenUnused
		case t.special[id]:
			c.Tokens[id], c.Types[id] = t.pieces[id], ggufTokenControl
		case t.isAddedID(id):
			c.Tokens[id], c.Types[id] = t.pieces[id], ggufTokenUserDefined
		case id == t.unk:
			c.Tokens[id], c.Types[id] = t.pieces[id], ggufTokenUnknown
		default:
			c.Tokens[id], c.Types[id] = t.pieces[id], ggufTokenNormal
		}
	}
	type rankedMerge struct {
		rank int32
		pair string
	}
	merges := make([]rankedMerge, 0, len(t.merges))
	for k, m := range t.merges {
		a, b := t.pieces[int(k>>32)], t.pieces[int(uint32(k))]
		if strings.Contains(a, " ") || strings.Contains(b, " ") {
			return ByteLevelBPEConfig{}, fmt.Errorf("tokenizer: merge %q + %q: GGUF merges are space-separated, so their tokens cannot hold a space", a, b)
		}
		merges = append(merges, rankedMerge{m.rank, a + " " + b})
	}
	slices.SortFunc(merges, func(x, y rankedMerge) int { return cmp.Compare(x.rank, y.rank) })
	c.Merges = make([]string, len(merges))
	for i, m := range merges {
		c.Merges[i] = m.pair
	}
	c.BOS, c.EOS, c.AddBOS = t.bos, t.eos, t.bos >= 0
	if c.BOS < 0 {
		c.BOS = t.ggufBOS
	}
	return c, nil
}

// isAddedID reports whether id is an added (control or user-defined) token.
func (t *BPE) isAddedID(id int) bool {
	got, ok := t.addedIDs[t.pieces[id]]
	return ok && got == id
}
