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
	"os"

	"github.com/golora/golora/model"
)

// Encoder is the part of a tokenizer that data loading needs.
// model/tokenizer.Tokenizer satisfies it.
type Encoder interface {
	Encode(text string) []int
	BOS() int // -1 if the vocabulary has none
	EOS() int // -1 if the vocabulary has none
}

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
}

// ReadJSONL reads training examples, one JSON object per line, in any of
// three shapes:
//
//	{"text": "..."}                           loss on every token
//	{"prompt": "...", "completion": "..."}    loss on the completion only
//	{"input_ids": [1, 2, 3]}                  pre-tokenized, loss on every token
//
// BOS is prepended and EOS appended to text examples when the tokenizer has
// them. Blank lines are skipped. vocabSize bounds pre-tokenized ids. name is
// used in error messages, which give the line number.
func ReadJSONL(r io.Reader, name string, tok Encoder, vocabSize int) ([]Example, error) {
	var out []Example
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		ex, err := parseRecord(raw, tok, vocabSize)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		out = append(out, ex)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no examples", name)
	}
	return out, nil
}

// LoadJSONL reads the JSONL file at path; see ReadJSONL.
func LoadJSONL(path string, tok Encoder, vocabSize int) ([]Example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer f.Close()
	return ReadJSONL(f, path, tok, vocabSize)
}

func parseRecord(raw []byte, tok Encoder, vocabSize int) (Example, error) {
	var rec record
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&rec); err != nil {
		return Example{}, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return Example{}, errors.New("more than one JSON value on the line")
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
	var ex Example
	add := func(ids []int, loss bool) {
		for _, id := range ids {
			ex.Tokens = append(ex.Tokens, id)
			ex.Loss = append(ex.Loss, loss)
		}
	}
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
		add(tok.Encode(*rec.Text), true)
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
		add(tok.Encode(*rec.Prompt), false)
		add(tok.Encode(*rec.Completion), true)
		if eos := tok.EOS(); eos >= 0 {
			add([]int{eos}, true)
		}
	}
	if len(ex.Tokens) < 2 {
		return Example{}, fmt.Errorf("example has %d tokens; at least 2 are needed to predict one", len(ex.Tokens))
	}
	return ex, nil
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
const Ignore = model.IgnoreTarget

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
