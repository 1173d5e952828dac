// Package train runs gradient descent on LoRA adapters over a frozen,
// possibly 4-bit, base: data loading and batching, the AdamW optimizer,
// learning-rate schedules, gradient clipping, checkpoints and metrics.
package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"unicode/utf8"

	"github.com/golora/golora/internal/fsutil"
	"github.com/golora/golora/model/graph"
)

// Encoder is the part of a tokenizer that data loading needs.
// model/tokenizer.Tokenizer satisfies it.
type Encoder interface {
	Encode(text string) []int
	BOS() int // -1 if the vocabulary has none
	EOS() int // -1 if the vocabulary has none
}

// WithEnd returns tok with EOS reporting end: the token that ReadJSONL
// appends to close every text example, and so the token a trained adapter
// learns to end a text with. Models trained the llama2.c way (stories260K
// among them) never saw EOS: their data separates documents with the next
// one's BOS, their output head gives EOS no weight, and a LoRA adapter on
// the blocks cannot teach the frozen head a new token in a few hundred
// steps, while EOS targets push down the BOS that ended texts before — so
// the adapted model stops nowhere. Train such models with
// WithEnd(tok, tok.BOS()); generation stops at BOS as at EOS.
func WithEnd(tok Encoder, end int) Encoder { return endEncoder{tok, end} }

type endEncoder struct {
	Encoder
	end int
}

func (e endEncoder) EOS() int { return e.end }

// Example is one tokenized training example. Loss[i] reports whether token i
// is a prediction target: false for prompt tokens of a prompt/completion pair
// and for BOS.
type Example struct {
	Tokens []int
	Loss   []bool
}

// record is one line of a JSONL data file. Exactly one of the three shapes
// must be present.
type record struct {
	Text       *string `json:"text"`
	Prompt     *string `json:"prompt"`
	Completion *string `json:"completion"`
	InputIDs   []int   `json:"input_ids"`
	// Messages is a conversation, read by chatExample (chat.go).
	Messages json.RawMessage `json:"messages"`
}

// ReadJSONL reads training examples, one JSON object per line, in any of
// three shapes:
//
//	{"text": "..."}                           loss on every token
//	{"prompt": "...", "completion": "..."}    loss on the completion only
//	{"input_ids": [1, 2, 3]}                  pre-tokenized, loss on every token
//	{"messages": [{"role": ..., "content": ...}, ...]}
//	                                          a conversation in the model's chat
//	                                          template, loss on assistant turns
//	                                          (tok must be a ChatEncoder)
//
// BOS is prepended and EOS appended to text examples when the tokenizer has
// them. Blank lines are skipped, and so is a UTF-8 byte-order mark at the
// start. vocabSize bounds pre-tokenized ids. tok may be nil when every
// record is pre-tokenized.
//
// maxTokens, if positive, keeps only the first maxTokens tokens of each
// example — what a row without packing holds, Config.SeqLen+1 — and only as
// much of a long text is tokenized as that needs, so that the memory an
// example takes is bounded by what is kept, not by the line. name is used in
// error messages, which give the line number.
func ReadJSONL(r io.Reader, name string, tok Encoder, vocabSize, maxTokens int) ([]Example, error) {
	var out []Example
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		if line == 1 {
			raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 {
			continue
		}
		ex, err := parseRecord(raw, tok, vocabSize, maxTokens)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		out = append(out, ex)
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, fmt.Errorf("%s:%d: the line is longer than the limit of %d MiB", name, line+1, maxLineBytes>>20)
	} else if err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no examples", name)
	}
	return out, nil
}

// maxLineBytes is the longest line ReadJSONL reads.
const maxLineBytes = 64 << 20

// LoadJSONL reads the JSONL file at path, which must be a regular file; see
// ReadJSONL.
func LoadJSONL(path string, tok Encoder, vocabSize, maxTokens int) ([]Example, error) {
	f, err := fsutil.Open(path)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer f.Close()
	return ReadJSONL(f, path, tok, vocabSize, maxTokens)
}

func parseRecord(raw []byte, tok Encoder, vocabSize, maxTokens int) (Example, error) {
	var rec record
	// Unmarshal decodes in place; a Decoder would copy the line again. On
	// failure the Decoder tells a second value apart from broken JSON.
	if err := json.Unmarshal(raw, &rec); err != nil {
		dec := json.NewDecoder(bytes.NewReader(raw))
		if derr := dec.Decode(&record{}); derr != nil {
			return Example{}, fmt.Errorf("invalid JSON: %w", derr)
		}
		if dec.More() {
			return Example{}, errors.New("more than one JSON value on the line")
		}
		return Example{}, fmt.Errorf("invalid JSON: %w", err)
	}
	if rec.Messages != nil {
		if rec.Text != nil || rec.Prompt != nil || rec.Completion != nil || rec.InputIDs != nil {
			return Example{}, errors.New(`"messages" cannot come with "text", "prompt", "completion" or "input_ids"`)
		}
		return chatExample(rec.Messages, tok, vocabSize, maxTokens)
	}
	hasText, hasPair, hasIDs := rec.Text != nil, rec.Prompt != nil || rec.Completion != nil, rec.InputIDs != nil
	shapes := 0
	for _, b := range []bool{hasText, hasPair, hasIDs} {
		if b {
			shapes++
		}
	}
	if shapes != 1 {
		return Example{}, errors.New(`want exactly one of "text", "prompt"+"completion" or "input_ids"`)
	}
	if !hasIDs && tok == nil {
		return Example{}, errors.New("a text record needs a tokenizer, and there is none")
	}
	var ex Example
	room := func() int {
		if maxTokens <= 0 {
			return -1
		}
		return max(maxTokens-len(ex.Tokens), 0)
	}
	add := func(ids []int, loss bool) {
		if n := room(); n >= 0 && len(ids) > n {
			ids = ids[:n]
		}
		for _, id := range ids {
			ex.Tokens = append(ex.Tokens, id)
			ex.Loss = append(ex.Loss, loss)
		}
	}
	encode := func(text string) []int { return encodePrefix(tok, text, room()) }
	switch {
	case hasIDs:
		for i, id := range rec.InputIDs {
			if id < 0 || id >= vocabSize {
				return Example{}, fmt.Errorf("input_ids[%d] = %d is outside the vocabulary [0, %d)", i, id, vocabSize)
			}
		}
		add(rec.InputIDs, true)
		if len(ex.Tokens) > 0 {
			ex.Loss[0] = false
		}
	case hasText:
		if bos := tok.BOS(); bos >= 0 {
			add([]int{bos}, false)
		}
		add(encode(*rec.Text), true)
		if eos := tok.EOS(); eos >= 0 {
			add([]int{eos}, true)
		}
	default:
		if rec.Prompt == nil || rec.Completion == nil {
			return Example{}, errors.New(`"prompt" and "completion" must come together`)
		}
		if bos := tok.BOS(); bos >= 0 {
			add([]int{bos}, false)
		}
		add(encode(*rec.Prompt), false)
		add(encode(*rec.Completion), true)
		if eos := tok.EOS(); eos >= 0 {
			add([]int{eos}, true)
		}
	}
	if len(ex.Tokens) < 2 {
		return Example{}, fmt.Errorf("example has %d tokens; at least 2 are needed to predict one", len(ex.Tokens))
	}
	return ex, nil
}

// encodePrefix returns the tokens of text, or when limit is not negative at
// least its first limit tokens (fewer only if text has fewer), tokenizing a
// prefix of text that grows until it gives them. The prefix ends before a
// white space, and a margin of tokens past the limit is asked for, so that
// the kept tokens are those of the whole text.
func encodePrefix(tok Encoder, text string, limit int) []int {
	const margin = 16
	if limit < 0 {
		return tok.Encode(text)
	}
	if limit == 0 {
		return nil
	}
	for n := 8 * (limit + margin); ; n *= 2 {
		if n >= len(text) {
			return tok.Encode(text)
		}
		cut := cutBeforeSpace(text, n)
		ids := tok.Encode(text[:cut])
		if len(ids) >= limit+margin {
			return ids[:limit]
		}
	}
}

// cutBeforeSpace returns an index near n at which to cut text: before the
// first white space at or after n, or failing one within 4 KiB, at the
// start of the character at n.
func cutBeforeSpace(text string, n int) int {
	end := min(len(text), n+4096)
	if i := strings.IndexAny(text[n:end], " \t\n\r"); i >= 0 {
		return n + i
	}
	for n > 0 && !utf8.RuneStart(text[n]) {
		n--
	}
	return n
}

// batch is one step's input: Inputs[b*SeqLen+t] is the token at position t of
// row b and Targets the token to predict there, or Ignore.
type batch struct {
	Size, SeqLen int
	Inputs       []int
	Targets      []int
}

// Ignore marks a target position that does not count in the loss; it is
// the model graph's own marker, so batches go to Graph.SetBatch unchanged.
const Ignore = graph.IgnoreTarget

// Tokens returns the number of target positions that count in the loss.
func (b *batch) Tokens() int {
	n := 0
	for _, t := range b.Targets {
		if t != Ignore {
			n++
		}
	}
	return n
}

// batcher cuts examples into fixed-shape batches in a seeded shuffled order,
// epoch after epoch. Its position is a plain value (see State), so a resumed
// run sees exactly the batches an uninterrupted run would.
type batcher struct {
	rows    [][2][]int // per row: inputs, targets (each SeqLen long)
	size    int
	seqLen  int
	seed    uint64
	pad     int
	state   batcherState
	order   []int
	orderOf int // epoch that order was computed for; -1 when none
}

// batcherState is the position of a batcher: how many epochs it has finished
// and how many rows of the current epoch it has handed out.
type batcherState struct {
	Epoch int `json:"epoch"`
	Row   int `json:"row"`
}

// batchOptions says how examples become rows.
type batchOptions struct {
	Size   int    // rows per batch
	SeqLen int    // positions per row
	Pack   bool   // concatenate examples and cut the stream into rows, instead of one padded row per example
	Pad    int    // input token id used for padding (its target is Ignore)
	Seed   uint64 // shuffle seed
}

// newBatcher prepares rows from examples. Without packing, an example longer
// than SeqLen+1 tokens is truncated and a shorter one padded; with packing,
// examples are joined end to end and cut into rows of SeqLen+1 tokens, the
// last partial row padded.
func newBatcher(examples []Example, opts batchOptions) (*batcher, error) {
	if opts.Size < 1 || opts.SeqLen < 1 {
		return nil, fmt.Errorf("train: batch size %d and sequence length %d must be positive", opts.Size, opts.SeqLen)
	}
	if len(examples) == 0 {
		return nil, errors.New("train: no examples")
	}
	b := &batcher{size: opts.Size, seqLen: opts.SeqLen, seed: opts.Seed, pad: opts.Pad, orderOf: -1}
	span := opts.SeqLen + 1
	if opts.Pack {
		var toks []int
		var loss []bool
		for _, ex := range examples {
			toks = append(toks, ex.Tokens...)
			loss = append(loss, ex.Loss...)
		}
		for start := 0; start+1 < len(toks); start += opts.SeqLen {
			end := min(start+span, len(toks))
			b.rows = append(b.rows, makeRow(toks[start:end], loss[start:end], opts.SeqLen, opts.Pad))
		}
	} else {
		for _, ex := range examples {
			end := min(span, len(ex.Tokens))
			b.rows = append(b.rows, makeRow(ex.Tokens[:end], ex.Loss[:end], opts.SeqLen, opts.Pad))
		}
	}
	return b, nil
}

// makeRow shifts a token span into inputs and next-token targets.
func makeRow(toks []int, loss []bool, seqLen, pad int) [2][]int {
	in := make([]int, seqLen)
	tg := make([]int, seqLen)
	for t := range seqLen {
		in[t], tg[t] = pad, Ignore
		if t < len(toks) {
			in[t] = toks[t]
		}
		if t+1 < len(toks) && loss[t+1] {
			tg[t] = toks[t+1]
		}
	}
	return [2][]int{in, tg}
}

// Rows returns the number of rows in one epoch.
func (b *batcher) Rows() int { return len(b.rows) }

// State returns the batcher's position.
func (b *batcher) State() batcherState { return b.state }

// SetState moves the batcher to a position saved by State.
func (b *batcher) SetState(s batcherState) error {
	if s.Epoch < 0 || s.Row < 0 || s.Row > len(b.rows) {
		return fmt.Errorf("train: batcher state %+v out of range for %d rows", s, len(b.rows))
	}
	b.state = s
	return nil
}

// Next fills and returns the next batch, wrapping to a newly shuffled epoch
// when the current one runs out.
func (b *batcher) Next() *batch {
	out := &batch{Size: b.size, SeqLen: b.seqLen,
		Inputs: make([]int, b.size*b.seqLen), Targets: make([]int, b.size*b.seqLen)}
	for r := range b.size {
		if b.state.Row == len(b.rows) {
			b.state = batcherState{Epoch: b.state.Epoch + 1}
		}
		if b.orderOf != b.state.Epoch {
			b.order = epochOrder(len(b.rows), b.seed, b.state.Epoch)
			b.orderOf = b.state.Epoch
		}
		row := b.rows[b.order[b.state.Row]]
		b.state.Row++
		copy(out.Inputs[r*b.seqLen:], row[0])
		copy(out.Targets[r*b.seqLen:], row[1])
	}
	return out
}

// epochOrder is a permutation that depends only on the seed and the epoch,
// so any position can be recomputed without replaying earlier epochs.
func epochOrder(n int, seed uint64, epoch int) []int {
	rng := rand.New(rand.NewPCG(seed, uint64(epoch)))
	return rng.Perm(n)
}

// Batches returns every row of the examples once, in order, as full-size
// batches; rows missing from the last batch are padding with no targets, so
// they do not count in the loss. It is meant for evaluation.
func (b *batcher) Batches() []*batch {
	var out []*batch
	for start := 0; start < len(b.rows); start += b.size {
		bt := &batch{Size: b.size, SeqLen: b.seqLen,
			Inputs: make([]int, b.size*b.seqLen), Targets: make([]int, b.size*b.seqLen)}
		for i := range bt.Targets {
			bt.Inputs[i], bt.Targets[i] = b.pad, Ignore
		}
		for r, row := range b.rows[start:min(start+b.size, len(b.rows))] {
			copy(bt.Inputs[r*b.seqLen:], row[0])
			copy(bt.Targets[r*b.seqLen:], row[1])
		}
		out = append(out, bt)
	}
	return out
}

// Split holds out a fraction of examples for evaluation: it shuffles a copy
// with seed and returns the first part for training and the last
// ⌈frac·len⌉ (at least one, when frac > 0) for evaluation.
func Split(examples []Example, frac float64, seed uint64) (trainSet, evalSet []Example, err error) {
	if !(frac >= 0 && frac < 1) {
		return nil, nil, fmt.Errorf("train: Split: fraction %v is not in [0, 1)", frac)
	}
	n := int(math.Ceil(frac * float64(len(examples))))
	if n >= len(examples) && n > 0 {
		return nil, nil, fmt.Errorf("train: Split: holding out %d of %d examples leaves none to train on", n, len(examples))
	}
	shuffled := make([]Example, len(examples))
	for i, j := range rand.New(rand.NewPCG(seed, splitStream)).Perm(len(examples)) {
		shuffled[i] = examples[j]
	}
	return shuffled[:len(shuffled)-n], shuffled[len(shuffled)-n:], nil
}

// splitStream keeps Split's shuffle apart from the epoch orders, which use
// the same seed.
const splitStream = 0x73706c6974 // "split"
