package infer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/tokenizer"
	"github.com/golora/golora/nf4"
)

// Adapter adds a correction to the output of every frozen linear layer
// during generation; LoRA adapters implement it as y += scaling·(x·Aᵀ)·Bᵀ.
// AddDelta is called right after the base product y = x·Wᵀ with x [n, lin.In]
// and y [n, lin.Out], row-major; it must only add to y and must return
// quickly for layers it does not adapt. It is called for the output head too.
// An error stops the forward pass; the generator returns it wrapped.
type Adapter interface {
	AddDelta(lin *model.Linear, y, x []float32, n int) error
}

// DefaultPrefillBatch is the number of prompt tokens a Generator processes in
// one batched pass when GeneratorOptions.PrefillBatch is zero.
const DefaultPrefillBatch = 64

// GeneratorOptions configures a Generator.
type GeneratorOptions struct {
	// MaxLen is the number of positions the KV cache can hold: the prompt
	// plus every generated token. Zero means model.Config.MaxSeqLen. The cache
	// starts smaller and grows as positions are used. For longrope it is
	// capped at the model's original positions, beyond which the long
	// factors (not implemented) would apply (Generator.MaxLen reports the
	// cap).
	MaxLen int
	// PrefillBatch is the number of prompt tokens processed per batched
	// pass; it sizes the scratch buffers. Zero means DefaultPrefillBatch.
	PrefillBatch int
	// Adapter, if not nil, adds its correction at every linear layer.
	Adapter Adapter
	// Head is the precision of the output head's product; the zero value,
	// HeadExact, uses the model's own head.
	Head HeadPrecision
	// Activations is the precision of the vector the NF4 linear layers
	// multiply in a decode step; the zero value, ActivationsExact, keeps it
	// in float32.
	Activations ActivationPrecision
}

// ActivationPrecision is the format a Generator's decode steps hand the
// vector in to NF4 products. A decode step reads every weight once, and on
// a mid-sized model (stories110M) decoding the 4-bit codes to float32 and
// multiplying in float32 costs more than reading them: integer dot
// products, as llama.cpp runs its 4-bit formats, cost a third to a half as
// much.
type ActivationPrecision int

const (
	// ActivationsExact multiplies the NF4 weights, decoded to float32, by
	// the float32 vector: the logits are those of the model.
	ActivationsExact ActivationPrecision = iota
	// ActivationsInt8 quantizes the vector of each decode-step product with
	// an NF4 weight to int8 in blocks of 32 values with a float32 scale
	// each (llama.cpp's Q8_0, once per vector: Q, K and V share it, and
	// gate and up), maps the NF4 codes to int8 (the 16 levels ×127,
	// rounded: each level moves by at most 0.5/127 of its block's absmax)
	// and multiplies with integer dot products (nf4.Matrix.MulVecInt8Rows;
	// AVX-512 VNNI, or AVX2). Each vector value moves by at most half its
	// block's step, max|x|/254. Measured against the exact products of the
	// same NF4 weights (TestActivationsInt8LogitError), the largest logit
	// error is 1.2% of the logits' spread (max − min) on the trained
	// stories260K and 0.06% on a random stories15M-shaped model over 40
	// decode steps, and 0.2% on a stories110M-shaped one over 8 (0.24% with
	// HeadInt8, whose vector is then quantized too), and greedy decoding picks
	// the same tokens except at near ties (one of 40 on stories260K, whose
	// top two logits were 0.02% of the spread apart).
	//
	// It applies to NF4 weights whose rows are whole blocks of at least 64
	// (QLoRA's blocks of 64 with rows of a multiple of 64 columns), and to
	// a HeadInt8 head with Dim a multiple of 128 (HeadInt8); other
	// weights, prefill and an adapter's own product run as with
	// ActivationsExact. NewGenerator decodes these weights' block scales to
	// float32 (4 bytes per 64 weights, an eighth of their size as NF4)
	// rather than decode them in every product, and reports an error when
	// no weight qualifies.
	ActivationsInt8
)

// String returns the precision's name: "exact" or "int8".
func (p ActivationPrecision) String() string {
	switch p {
	case ActivationsExact:
		return "exact"
	case ActivationsInt8:
		return "int8"
	}
	return fmt.Sprintf("ActivationPrecision(%d)", int(p))
}

// ParseActivationPrecision returns the ActivationPrecision whose String is
// s: "exact" or "int8".
func ParseActivationPrecision(s string) (ActivationPrecision, error) {
	return parsePrecision(s, ActivationsExact, ActivationsInt8)
}

// parsePrecision returns the one of ps whose String is s.
func parsePrecision[P fmt.Stringer](s string, ps ...P) (P, error) {
	names := make([]string, len(ps))
	for i, p := range ps {
		if p.String() == s {
			return p, nil
		}
		names[i] = p.String()
	}
	var zero P
	return zero, fmt.Errorf("%q: want %s", s, strings.Join(names, " or "))
}

// HeadPrecision is the format a Generator multiplies by the output head in.
// The head of a small model is most of its weights (stories15M: 9.2M of
// 15M parameters, kept in float32 by QLoRA), and a decode step is bound by
// reading the weights once, so its format sets the decode speed.
type HeadPrecision int

const (
	// HeadExact multiplies by the model's own head, float32 or quantized:
	// the logits are those of the model.
	HeadExact HeadPrecision = iota
	// HeadInt8 multiplies by a copy of a float32 head quantized to int8 in
	// blocks of 32 weights with a float32 scale each (kernels.Int8Matrix,
	// llama.cpp's Q8_0 layout; llama.cpp's own Q4_0 file of a
	// tied-embedding model holds its head in Q6_K when Dim is a multiple of
	// 256, as on the stories110M shape (dim 768), and in Q8_0 otherwise, as
	// on stories15M (dim 288)): a quarter of the bytes, made by
	// NewGenerator (the copy belongs to the Generator). Each weight moves
	// by at most half its block's step; measured over 40 decode steps
	// (TestHeadInt8LogitError), the largest logit error is 0.5% of the
	// logits' spread (max − min) on the trained stories260K and 0.14% on a
	// random stories15M-shaped model, and greedy decoding picks the same
	// tokens. It needs Dim a multiple of 32; a quantized head (16-bit, or
	// a GGUF's blocks) is quantized from its dequantized values. With
	// ActivationsInt8 and Dim a multiple of 128, the head's vector is
	// quantized to int8 too and the products are integer dot products
	// (nf4.Int8Matrix), as llama.cpp runs its head: on a stories110M-shaped
	// model over 8 decode steps, 0.24% of the spread against 0.2% with the
	// head exact (TestActivationsInt8LogitError).
	HeadInt8
)

// String returns the precision's name: "exact" or "int8".
func (p HeadPrecision) String() string {
	switch p {
	case HeadExact:
		return "exact"
	case HeadInt8:
		return "int8"
	}
	return fmt.Sprintf("HeadPrecision(%d)", int(p))
}

// ParseHeadPrecision returns the HeadPrecision whose String is s: "exact"
// or "int8".
func ParseHeadPrecision(s string) (HeadPrecision, error) {
	return parsePrecision(s, HeadExact, HeadInt8)
}

// ErrContextFull is wrapped by the error returned when tokens would not fit
// in the Generator's KV cache.
var ErrContextFull = errors.New("infer: KV cache is full")

// Generator runs a frozen model forward incrementally: it keeps the keys and
// values of every position seen so far, so each new token costs one pass over
// the weights, never a re-run of the prefix. Scratch buffers are allocated by
// NewGenerator and the KV cache grows by doubling as positions are used, so
// a Step does not allocate in the steady state (unless the Adapter does, or
// a quantized format without MulTRows, whose MulT then runs). A Step splits
// each large product by weight rows, and attention by heads, over
// GOMAXPROCS goroutines: the caller's and helpers of the Generator's own,
// started by NewGenerator, which spin briefly between products and park
// when idle (they end when the Generator is collected). A batched Prefill
// may allocate, in Sgemm.
//
// A Generator is not safe for concurrent use; the model.Weights it runs on are
// only read, so several Generators may share one model.Weights.
type Generator struct {
	w       *model.Weights
	adapter Adapter

	maxLen, batch int
	qDim, kvDim   int
	pos           int

	// keys and values hold, per layer, each KV head's positions in a run
	// of its own, [KVHeads, capacity, HeadDim] with capacity ≤ maxLen: a
	// head's attention reads one contiguous run, which the hardware
	// prefetchers follow, rather than HeadDim values every kvDim.
	keys, values [][]float32
	capacity     int       // positions the cache holds
	invFreq      []float64 // RoPE frequencies (model.Weights.RopeInvFreq), [Rotary/2]

	// Scratch for up to batch rows.
	x        []float32   // residual stream [batch, Dim]
	xn       []float32   // normalized x [batch, Dim]
	q        []float32   // queries [batch, qDim]
	k, v     []float32   // keys and values [batch, kvDim], before they go to the cache
	attn     []float32   // attention output [batch, qDim]
	proj     []float32   // o_proj and down_proj output [batch, Dim]
	gate, up []float32   // MLP [batch, HiddenDim]
	cos, sin []float32   // RoPE [batch, Rotary/2]
	scores   [][]float32 // attention weights of one head [capacity], one per goroutine of the team
	logits   []float32   // [VocabSize]

	head *kernels.Int8Matrix // the output head with HeadInt8, else nil
	// head8 is the output head with HeadInt8 and ActivationsInt8 when its
	// rows are whole pairs of 128 columns (then head is nil): its
	// products take g.act, the int8 copy of the vector.
	head8 *nf4.Int8Matrix

	// With ActivationsInt8, act holds the int8 copy of the vector of the
	// NF4 products being run (linear, linears).
	int8Act map[*model.Linear]*int8Linear // the linears that qualify, nil without ActivationsInt8
	act     nf4.Int8Vector

	// Work split over the CPUs in a decode step: nil with GOMAXPROCS 1.
	team *team
	// fused[:nFused] is the current single-row product: one linear, or
	// with fuseInt8 the linears that read one vector (linears). fuseInt8
	// is set with a team and ActivationsInt8.
	fused    [maxFused]fusedPart
	nFused   int
	fuseInt8 bool
	job      attentionJob
	// chunksPerWorker is the constant of that name; benchmarks vary it.
	chunksPerWorker int
	// g.mulFusedChunk and g.attentionHead, bound once so a step does not
	// allocate.
	fusedChunk func(worker, chunk int) error
	attHead    func(worker, head int) error
}

// attentionJob is layer's attention of n rows, out from the queries q,
// split by heads over the team.
type attentionJob struct {
	out, q   []float32
	layer, n int
}

// NewGenerator checks w with Validate and allocates the KV cache and scratch
// buffers for it.
func NewGenerator(w *model.Weights, opts GeneratorOptions) (*Generator, error) {
	if w == nil {
		return nil, errors.New("infer: NewGenerator: weights are nil")
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	c := w.Config
	maxLen := opts.MaxLen
	if maxLen == 0 {
		maxLen = c.MaxSeqLen
	}
	if maxLen <= 0 {
		return nil, fmt.Errorf("infer: NewGenerator: KV cache length %d (MaxLen %d, model.Config.MaxSeqLen %d) must be positive",
			maxLen, opts.MaxLen, c.MaxSeqLen)
	}
	batch := opts.PrefillBatch
	if batch == 0 {
		batch = DefaultPrefillBatch
	}
	if batch < 0 {
		return nil, fmt.Errorf("infer: NewGenerator: PrefillBatch %d is negative", batch)
	}
	maxLen = ropeMaxLen(&c, maxLen)
	batch = min(batch, maxLen)
	g := &Generator{
		w:       w,
		adapter: opts.Adapter,
		maxLen:  maxLen,
		batch:   batch,
		qDim:    c.Heads * c.HeadDim,
		kvDim:   c.KVHeads * c.HeadDim,
		keys:    make([][]float32, c.Layers),
		values:  make([][]float32, c.Layers),
	}
	half := c.Rotary() / 2
	g.invFreq = w.RopeInvFreq()
	g.x = make([]float32, batch*c.Dim)
	g.xn = make([]float32, batch*c.Dim)
	g.q = make([]float32, batch*g.qDim)
	g.k = make([]float32, batch*g.kvDim)
	g.v = make([]float32, batch*g.kvDim)
	g.attn = make([]float32, batch*g.qDim)
	g.proj = make([]float32, batch*c.Dim)
	g.gate = make([]float32, batch*c.HiddenDim)
	g.up = make([]float32, batch*c.HiddenDim)
	g.cos = make([]float32, batch*half)
	g.sin = make([]float32, batch*half)
	g.logits = make([]float32, c.VocabSize)
	switch opts.Head {
	case HeadExact:
	case HeadInt8:
		out := w.Output
		dense := out.Dense
		if out.Quantized != nil {
			// A quantized head (16-bit, a GGUF's blocks) is quantized
			// from its dequantized values; the float32 copy lives only
			// while it is.
			dense = make([]float32, out.Out*out.In)
			if err := out.Quantized.DequantizeRows(dense, 0, out.Out); err != nil {
				return nil, fmt.Errorf("infer: NewGenerator: HeadInt8: %s: %w", out.Name, err)
			}
		}
		head, err := kernels.QuantizeInt8(dense, out.Out, out.In)
		if err != nil {
			return nil, fmt.Errorf("infer: NewGenerator: HeadInt8: %s: %w", out.Name, err)
		}
		g.head = head
	default:
		return nil, fmt.Errorf("infer: NewGenerator: unknown head precision %d", int(opts.Head))
	}
	switch opts.Activations {
	case ActivationsExact:
	case ActivationsInt8:
		g.int8Act = int8Linears(w)
		if len(g.int8Act) == 0 {
			return nil, errors.New("infer: NewGenerator: ActivationsInt8 needs NF4 linear layers whose rows are whole blocks of at least 64 weights; the model has none")
		}
		in := 0
		for lin := range g.int8Act {
			in = max(in, lin.In)
		}
		if g.head != nil && g.head.Cols%int8HeadPair == 0 {
			head8, err := nf4.NewInt8Matrix(g.head.Codes, g.head.Scales, g.head.Rows, g.head.Cols)
			if err != nil {
				return nil, fmt.Errorf("infer: NewGenerator: HeadInt8: %s: %w", w.Output.Name, err)
			}
			g.head, g.head8 = nil, head8
			in = max(in, head8.Cols())
		}
		// Sized now, so that a decode step does not allocate.
		if err := g.act.Quantize(make([]float32, in)); err != nil {
			return nil, fmt.Errorf("infer: NewGenerator: %w", err)
		}
	default:
		return nil, fmt.Errorf("infer: NewGenerator: unknown activation precision %d", int(opts.Activations))
	}
	g.attHead, g.fusedChunk = g.attentionHead, g.mulFusedChunk
	g.chunksPerWorker = chunksPerWorker
	g.team = startTeam(g)
	g.fuseInt8 = g.team != nil && g.int8Act != nil
	g.scores = make([][]float32, g.team.size())
	g.reserve(min(maxLen, initialCacheLen))
	return g, nil
}

// int8Linear is a linear layer of ActivationsInt8: its NF4 weight and the
// weight's block scales, decoded once (nf4.Matrix.MulVecInt8Rows).
type int8Linear struct {
	m      *nf4.Matrix
	absmax []float32
}

// int8Linears returns the linear layers of w that can multiply an int8
// vector: NF4 with rows of whole blocks of at least 64
// (nf4.Matrix.SupportsInt8).
func int8Linears(w *model.Weights) map[*model.Linear]*int8Linear {
	out := map[*model.Linear]*int8Linear{}
	for _, lin := range append(w.Linears(), w.Output) {
		if m, ok := lin.Quantized.(*nf4.Matrix); ok && m.SupportsInt8() {
			out[lin] = &int8Linear{m: m, absmax: m.Absmax()}
		}
	}
	return out
}

// int8HeadPair is the columns of an Int8Matrix's pair: with HeadInt8 and
// ActivationsInt8 a head whose rows are whole pairs multiplies the int8
// vector (nf4.Int8Matrix); in others the padding would cost more than the
// integer products save.
const int8HeadPair = 128

// ropeMaxLen caps n positions at longrope's original ones: beyond them its
// long factors apply, to every position; only the short ones are
// implemented.
func ropeMaxLen(c *model.Config, n int) int {
	if c.RopeScaling.Type == "longrope" {
		return min(n, c.RopeScaling.OriginalMaxPos)
	}
	return n
}

// initialCacheLen is the number of positions a new Generator's KV cache holds
// before it first grows. Models declare contexts of up to 128K positions, a
// cache of many gigabytes, while most generations use a small part of it.
const initialCacheLen = 1024

// reserve grows the KV cache, doubling it up to maxLen, so that it holds n
// positions, keeping what it has. Growth is rare, so a decode step does
// not allocate in the steady state.
func (g *Generator) reserve(n int) {
	have := g.capacity
	if n <= have {
		return
	}
	capacity := min(g.maxLen, max(n, 2*have))
	hd := g.w.Config.HeadDim
	grow := func(old []float32) []float32 {
		cache := make([]float32, capacity*g.kvDim)
		for h := range g.kvDim / hd {
			copy(cache[h*capacity*hd:], old[h*have*hd:(h*have+g.pos)*hd])
		}
		return cache
	}
	for l := range g.keys {
		g.keys[l], g.values[l] = grow(g.keys[l]), grow(g.values[l])
	}
	g.capacity = capacity
	for p := range g.scores {
		g.scores[p] = make([]float32, capacity)
	}
}

// Weights returns the model the Generator runs.
func (g *Generator) Weights() *model.Weights { return g.w }

// Pos returns the number of positions processed so far, which is the
// position the next token will take.
func (g *Generator) Pos() int { return g.pos }

// MaxLen returns the number of positions the KV cache can hold.
func (g *Generator) MaxLen() int { return g.maxLen }

// Reset forgets every position, so the next Prefill starts a new sequence.
func (g *Generator) Reset() { g.pos = 0 }

// Prefill runs tokens at positions Pos()…Pos()+len(tokens)−1 in batched
// passes of up to PrefillBatch rows and returns the logits [VocabSize] that
// predict the token after the last one. The returned slice is owned by the
// Generator and overwritten by the next call. On error the Generator is left
// at the position of the last complete batch.
func (g *Generator) Prefill(tokens []int) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, errors.New("infer: Prefill: no tokens")
	}
	if err := g.checkTokens(tokens); err != nil {
		return nil, err
	}
	for start := 0; start < len(tokens); start += g.batch {
		end := min(start+g.batch, len(tokens))
		if err := g.forward(tokens[start:end], end == len(tokens)); err != nil {
			return nil, err
		}
	}
	return g.logits, nil
}

// Step runs one token at position Pos() and returns the logits [VocabSize]
// that predict the next one; the slice is owned by the Generator and
// overwritten by the next call.
func (g *Generator) Step(token int) ([]float32, error) {
	var one [1]int
	one[0] = token
	if err := g.checkTokens(one[:]); err != nil {
		return nil, err
	}
	if err := g.forward(one[:], true); err != nil {
		return nil, err
	}
	return g.logits, nil
}

// GenerateOptions configures a generation.
type GenerateOptions struct {
	// MaxTokens is the most new tokens to generate; zero means until EOS
	// or a full KV cache.
	MaxTokens int
	// Temperature, TopP and Rand choose the next token; see SamplerOptions.
	// Temperature 0 is greedy decoding.
	Temperature float64
	TopP        float64
	Rand        *rand.Rand
	// Stop ends generation as soon as the text contains one of these
	// strings; the stop string and anything after it are left out of the
	// result and never passed to OnToken.
	Stop []string
	// OnToken, if not nil, receives each generated token as it comes with
	// the text it makes printable. The text may be empty (an incomplete
	// UTF-8 character, or the possible start of a stop string, is held back)
	// and may include text held back from earlier tokens. A last call with
	// id −1 delivers text still held back when generation ends. Returning an
	// error stops generation; Generate returns it wrapped.
	OnToken func(id int, text string) error
	// Adapter, if not nil, adds its correction at every linear layer for
	// this generation, in place of the Generator's own.
	Adapter Adapter
	// Head is the precision of the output head's product for Generate
	// (GeneratorOptions.Head); a Generator's own Generate method keeps the
	// Generator's.
	Head HeadPrecision
	// Activations is the precision of the NF4 products' vectors for
	// Generate (GeneratorOptions.Activations); a Generator's own Generate
	// method keeps the Generator's.
	Activations ActivationPrecision
}

// StopReason says why generation ended.
type StopReason string

// The reasons generation ends without an error.
const (
	StopEOS    StopReason = "eos"    // the model produced EOS (or BOS, which starts a new document)
	StopLength StopReason = "length" // MaxTokens reached or the KV cache full
	StopString StopReason = "stop"   // the text reached one of GenerateOptions.Stop
)

// Completion is the outcome of a generation.
type Completion struct {
	Text         string     // the generated text, without the prompt or a stop string
	Tokens       []int      // the generated ids, without EOS
	PromptTokens int        // the number of prompt ids, BOS included
	Reason       StopReason // why generation ended; empty when it ended with an error
}

// Generate runs a new sequence: it resets g, runs prompt (ids, BOS included
// if the model expects it) in batched passes, then samples one token at a
// time, feeding each back through the KV cache, until EOS or BOS, a stop
// string, MaxTokens or a full KV cache. tok decodes the generated ids and
// names EOS and BOS. ctx is checked between batches and tokens.
//
// On error (a cancelled ctx, an OnToken error) the Completion holds what was
// generated so far.
func (g *Generator) Generate(ctx context.Context, tok tokenizer.Tokenizer, prompt []int, opts GenerateOptions) (Completion, error) {
	res := Completion{PromptTokens: len(prompt)}
	if tok == nil {
		return res, errors.New("infer: Generate: tokenizer is nil")
	}
	if opts.MaxTokens < 0 {
		return res, fmt.Errorf("infer: Generate: MaxTokens %d is negative", opts.MaxTokens)
	}
	for i, s := range opts.Stop {
		if s == "" {
			return res, fmt.Errorf("infer: Generate: stop string %d is empty", i)
		}
	}
	sampler, err := NewSampler(SamplerOptions{Temperature: opts.Temperature, TopP: opts.TopP, Rand: opts.Rand})
	if err != nil {
		return res, err
	}
	if len(prompt) == 0 {
		return res, errors.New("infer: Generate: empty prompt (a tokenizer without BOS needs some text)")
	}
	if opts.Adapter != nil {
		saved := g.adapter
		g.adapter = opts.Adapter
		defer func() { g.adapter = saved }()
	}
	if err := g.prefillPrompt(ctx, prompt); err != nil {
		return res, err
	}
	return g.decode(ctx, tok, sampler, prompt, opts, res)
}

// prefillPrompt resets g and runs prompt in batched passes, checking ctx
// between them.
func (g *Generator) prefillPrompt(ctx context.Context, prompt []int) error {
	g.Reset()
	if err := g.checkTokens(prompt); err != nil {
		return fmt.Errorf("infer: Generate: prompt: %w", err)
	}
	for start := 0; start < len(prompt); start += g.batch {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("infer: Generate: prompt: %w", err)
		}
		end := min(start+g.batch, len(prompt))
		if err := g.forward(prompt[start:end], end == len(prompt)); err != nil {
			return err
		}
	}
	return nil
}

// decode samples one token at a time after the prefilled prompt, feeding
// each back through the KV cache, until EOS or BOS, a stop string,
// MaxTokens or a full KV cache; res holds what was generated, also on error.
func (g *Generator) decode(ctx context.Context, tok tokenizer.Tokenizer, sampler *Sampler, prompt []int, opts GenerateOptions, res Completion) (Completion, error) {
	// The stream decoder sees the prompt first, so that the first generated
	// token is decoded in context (SentencePiece drops the leading space of
	// the first token only).
	dec := tokenizer.NewStreamDecoder(tok)
	for _, id := range prompt {
		dec.Next(id)
	}
	dec.Flush()
	out := streamText{StopText: StopText{Stops: opts.Stop}, onToken: opts.OnToken}
	fail := func(err error) (Completion, error) {
		res.Text = out.Text()
		return res, err
	}
	eos, bos := tok.EOS(), tok.BOS()
	logits := g.logits
	for {
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("infer: Generate: after %d tokens: %w", len(res.Tokens), err))
		}
		id, err := sampler.Sample(logits)
		if err != nil {
			return fail(fmt.Errorf("infer: Generate: position %d: %w", g.pos, err))
		}
		if (eos >= 0 && id == eos) || (bos >= 0 && id == bos) {
			res.Reason = StopEOS
			break
		}
		res.Tokens = append(res.Tokens, id)
		stopped, err := out.add(id, dec.Next(id))
		if err != nil {
			return fail(err)
		}
		if stopped {
			res.Reason = StopString
			break
		}
		if len(res.Tokens) == opts.MaxTokens || g.pos == g.maxLen {
			res.Reason = StopLength
			break
		}
		if logits, err = g.Step(id); err != nil {
			return fail(err)
		}
	}
	if res.Reason != StopString {
		// The bytes of an unfinished UTF-8 character and text held back as a
		// possible start of a stop string are final now.
		if err := out.flush(dec.Flush()); err != nil {
			return fail(err)
		}
	}
	res.Text = out.Text()
	return res, nil
}

// StopText accumulates generated text and cuts it at the first of its stop
// strings. Text that could be the start of a stop string is held back until
// later text shows whether it is, so a stop string is never passed on, even
// in part. The zero value with Stops set is ready to use; Generate and the
// serving engine both stream through it.
type StopText struct {
	Stops   []string
	text    strings.Builder
	emitted int // bytes of text passed on
}

// Add appends piece and returns the text that can be passed on now, and
// whether a stop string is complete (the text then ends before it).
func (s *StopText) Add(piece string) (string, bool) {
	s.text.WriteString(piece)
	full := s.text.String()
	// A stop string cannot begin before emitted: its start would have been
	// a held-back prefix when it was added.
	end, stopped := len(full), false
	for _, stop := range s.Stops {
		if i := strings.Index(full[s.emitted:], stop); i >= 0 && s.emitted+i < end {
			end, stopped = s.emitted+i, true
		}
	}
	safe := end
	if stopped {
		s.text.Reset()
		s.text.WriteString(full[:end])
	} else {
		safe = len(full) - heldBack(full[s.emitted:], s.Stops)
	}
	out := full[s.emitted:safe]
	s.emitted = safe
	return out, stopped
}

// Flush appends tail (a decoder's last bytes) and returns everything not
// passed on yet: at the end nothing more can complete a stop string.
func (s *StopText) Flush(tail string) string {
	s.text.WriteString(tail)
	full := s.text.String()
	out := full[s.emitted:]
	s.emitted = len(full)
	return out
}

// Text returns the text so far, cut before a completed stop string.
func (s *StopText) Text() string { return s.text.String() }

// streamText passes the text a StopText lets through on to Generate's
// callback.
type streamText struct {
	StopText
	onToken func(id int, text string) error
}

// add appends piece (the text of token id) and reports whether a stop string
// is now complete, in which case text is cut before it.
func (s *streamText) add(id int, piece string) (stopped bool, err error) {
	out, stopped := s.Add(piece)
	if s.onToken != nil {
		if err := s.onToken(id, out); err != nil {
			return stopped, fmt.Errorf("infer: Generate: token callback: %w", err)
		}
	}
	return stopped, nil
}

// flush appends tail and passes on text still held back.
func (s *streamText) flush(tail string) error {
	rest := s.Flush(tail)
	if rest == "" || s.onToken == nil {
		return nil
	}
	if err := s.onToken(-1, rest); err != nil {
		return fmt.Errorf("infer: Generate: token callback: %w", err)
	}
	return nil
}

// heldBack returns the length of the longest suffix of text that is a proper
// prefix of one of stops.
func heldBack(text string, stops []string) int {
	longest := 0
	for _, stop := range stops {
		for n := min(len(stop)-1, len(text)); n > longest; n-- {
			if strings.HasSuffix(text, stop[:n]) {
				longest = n
				break
			}
		}
	}
	return longest
}

// Generate encodes prompt with tok (BOS first when tok has one), runs it on
// w with a fresh Generator sized to the prompt plus MaxTokens (at most
// model.Config.MaxSeqLen) and returns the generated text, without the prompt.
// Tokens stream to opts.OnToken as they come; see Generator.Generate. On
// error the text generated so far is returned with it.
func Generate(ctx context.Context, w *model.Weights, tok tokenizer.Tokenizer, prompt string, opts GenerateOptions) (string, error) {
	if w == nil || tok == nil {
		return "", errors.New("infer: Generate: weights or tokenizer is nil")
	}
	ids := tok.Encode(prompt)
	if bos := tok.BOS(); bos >= 0 {
		ids = append([]int{bos}, ids...)
	}
	maxLen := w.Config.MaxSeqLen
	if opts.MaxTokens > 0 && (maxLen <= 0 || len(ids)+opts.MaxTokens < maxLen) {
		maxLen = len(ids) + opts.MaxTokens
	}
	if len(ids) > maxLen {
		return "", fmt.Errorf("%w: the prompt has %d tokens, the model's context is %d", ErrContextFull, len(ids), maxLen)
	}
	g, err := NewGenerator(w, GeneratorOptions{MaxLen: maxLen, Head: opts.Head, Activations: opts.Activations})
	if err != nil {
		return "", err
	}
	res, err := g.Generate(ctx, tok, ids, opts)
	return res.Text, err
}

// checkTokens rejects token ids outside the vocabulary and sequences that
// would overflow the KV cache, before any state changes.
func (g *Generator) checkTokens(tokens []int) error {
	if g.pos+len(tokens) > g.maxLen {
		if rs := g.w.Config.RopeScaling; rs.Type == "longrope" && g.maxLen == rs.OriginalMaxPos {
			return fmt.Errorf("%w: %d positions used + %d tokens > %d, the model's original positions, beyond which longrope's long factors (not implemented) apply",
				ErrContextFull, g.pos, len(tokens), g.maxLen)
		}
		return fmt.Errorf("%w: %d positions used + %d tokens > %d", ErrContextFull, g.pos, len(tokens), g.maxLen)
	}
	v := g.w.Config.VocabSize
	for i, t := range tokens {
		if t < 0 || t >= v {
			return fmt.Errorf("infer: token %d (index %d of %d) is outside the vocabulary [0, %d)", t, i, len(tokens), v)
		}
	}
	return nil
}

// forward runs len(tokens) ≤ g.batch tokens through every layer, appending
// their keys and values to the cache, and, when wantLogits is set, computes
// the logits of the last one.
func (g *Generator) forward(tokens []int, wantLogits bool) error {
	c := &g.w.Config
	n, d := len(tokens), c.Dim
	g.reserve(g.pos + n)
	g.team.hold()
	defer g.team.release()
	half := len(g.invFreq)
	x := g.x[:n*d]
	for i, t := range tokens {
		if err := g.w.EmbedToken(x[i*d:(i+1)*d], t); err != nil {
			return fmt.Errorf("infer: %w", err)
		}
	}
	for i := range n {
		kernels.RopeAnglesScaled(g.cos[i*half:(i+1)*half], g.sin[i*half:(i+1)*half], g.pos+i, g.invFreq, c.RopeScaling.AngleScale())
	}
	xn := g.xn[:n*d]
	q := g.q[:n*g.qDim]
	attn := g.attn[:n*g.qDim]
	proj := g.proj[:n*d]
	gate := g.gate[:n*c.HiddenDim]
	up := g.up[:n*c.HiddenDim]
	eps := c.NormEps
	for l := range g.w.Layers {
		layer := &g.w.Layers[l]
		k, v := g.k[:n*g.kvDim], g.v[:n*g.kvDim]

		kernels.RMSNorm(xn, x, layer.AttnNorm, eps)
		if err := g.linears([]*model.Linear{layer.Q, layer.K, layer.V}, [][]float32{q, k, v}, xn, n); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		if c.QKNorm {
			kernels.RMSNorm(q, q, layer.QNorm, eps)
			kernels.RMSNorm(k, k, layer.KNorm, eps)
		}
		ropeRows(q, g.cos, g.sin, half, n, c.Heads, c.HeadDim)
		ropeRows(k, g.cos, g.sin, half, n, c.KVHeads, c.HeadDim)
		g.store(l, k, v, n)
		g.attention(l, attn, q, n)
		if err := g.linear(layer.O, proj, attn, n); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		kernels.Add(x, proj)

		kernels.RMSNorm(xn, x, layer.MLPNorm, eps)
		if err := g.linears([]*model.Linear{layer.Gate, layer.Up}, [][]float32{gate, up}, xn, n); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		kernels.SwiGLU(gate, gate, up)
		if err := g.linear(layer.Down, proj, gate, n); err != nil {
			return fmt.Errorf("infer: layer %d: %w", l, err)
		}
		kernels.Add(x, proj)
	}
	g.pos += n
	if !wantLogits {
		return nil
	}
	last := xn[:d]
	kernels.RMSNorm(last, x[(n-1)*d:n*d], g.w.Norm, eps)
	return g.linear(g.w.Output, g.logits, last, 1)
}

// linear computes y = x·Wᵀ for n rows and lets the Adapter add to it.
func (g *Generator) linear(lin *model.Linear, y, x []float32, n int) error {
	quantized := false
	return g.linearOf(lin, y, x, n, &quantized)
}

// linearOf is linear where *quantized says whether g.act already holds x's
// int8 copy (ActivationsInt8), and is set once it does: linears that read
// the same x (K and V after Q, up after gate) quantize it once.
func (g *Generator) linearOf(lin *model.Linear, y, x []float32, n int, quantized *bool) error {
	int8Head := (g.head != nil || g.head8 != nil) && lin == g.w.Output
	var int8Act *int8Linear
	if n == 1 && g.int8Act != nil && !int8Head {
		int8Act = g.int8Act[lin]
	}
	if int8Act != nil || n == 1 && int8Head && g.head8 != nil {
		// Both multiply g.act, x's int8 copy.
		if !*quantized {
			if err := g.act.Quantize(x[:lin.In]); err != nil {
				return fmt.Errorf("%s: %w", lin.Name, err)
			}
			*quantized = true
		}
		if err := g.mulRowsSplit(lin, y, x, int8Head, int8Act); err != nil {
			return err
		}
	} else if n == 1 && (int8Head || canSplit(lin)) {
		// A decode step: split over the CPUs when large enough, and on
		// the calling goroutine otherwise, without MulT's goroutines.
		if err := g.mulRowsSplit(lin, y, x, int8Head, nil); err != nil {
			return err
		}
	} else if lin.Quantized != nil {
		if err := lin.Quantized.MulT(y, x, n); err != nil {
			return fmt.Errorf("%s: %w", lin.Name, err)
		}
	} else {
		kernels.DenseMulT(y, x, lin.Dense, n, lin.In, lin.Out)
	}
	return g.addBiasDelta(lin, y, x, n)
}

// addBiasDelta adds lin's bias and the Adapter's delta to y = x·Wᵀ.
func (g *Generator) addBiasDelta(lin *model.Linear, y, x []float32, n int) error {
	if lin.Bias != nil {
		kernels.AddBias(y[:n*lin.Out], lin.Bias)
	}
	if g.adapter != nil {
		if err := g.adapter.AddDelta(lin, y, x, n); err != nil {
			return fmt.Errorf("infer: adapter at %s: %w", lin.Name, err)
		}
	}
	return nil
}

// linears computes ys[i] = x·lins[i]ᵀ for linears that read the same x (Q,
// K and V; gate and up) as linear does, one after the other. A decode step
// whose linears all take ActivationsInt8 quantizes x once and splits all
// their rows over the team as one job: one hand-off and one wait instead
// of one per linear, which at a few hundred tokens/s is a measurable part
// of a step.
func (g *Generator) linears(lins []*model.Linear, ys [][]float32, x []float32, n int) error {
	fuse := n == 1 && g.fuseInt8 && len(lins) <= len(g.fused)
	for _, lin := range lins {
		fuse = fuse && g.int8Act[lin] != nil && (g.head == nil && g.head8 == nil || lin != g.w.Output)
	}
	if !fuse {
		quantized := false
		for i, lin := range lins {
			if err := g.linearOf(lin, ys[i], x, n, &quantized); err != nil {
				return err
			}
		}
		return nil
	}
	if err := g.act.Quantize(x[:lins[0].In]); err != nil {
		return fmt.Errorf("%s: %w", lins[0].Name, err)
	}
	chunks := 0
	for i, lin := range lins {
		rows := g.chunkRows(lin)
		g.fused[i] = fusedPart{lin: lin, act: g.int8Act[lin], y: ys[i], rows: rows, first: chunks}
		chunks += (lin.Out + rows - 1) / rows
	}
	g.nFused = len(lins)
	if err := g.runFused(chunks); err != nil {
		return err
	}
	for i, lin := range lins {
		if err := g.addBiasDelta(lin, ys[i], x, n); err != nil {
			return err
		}
	}
	return nil
}

// fusedPart is one linear of a single-row product: its rows are split into
// chunks of rows rows, the job's chunks first, first+1, …. With int8Head it
// multiplies x by g.head, or g.act by g.head8, which stands for lin; with
// act (lin's weight) it multiplies g.act, x's int8 copy.
type fusedPart struct {
	lin         *model.Linear
	y, x        []float32
	int8Head    bool
	act         *int8Linear
	rows, first int
}

// runFused computes the chunks of g.fused[:g.nFused], over the team when
// there are two or more.
func (g *Generator) runFused(chunks int) error {
	if chunks > 1 {
		return g.team.run(chunks, g.fusedChunk)
	}
	return g.mulFusedChunk(0, 0)
}

// mulFusedChunk computes chunk c of the product g.fused[:g.nFused].
func (g *Generator) mulFusedChunk(_, c int) error {
	i := g.nFused - 1
	for c < g.fused[i].first {
		i--
	}
	p := &g.fused[i]
	start := (c - p.first) * p.rows
	end := min(p.lin.Out, start+p.rows)
	var err error
	switch {
	case p.int8Head && g.head8 != nil:
		err = g.head8.MulVecRows(p.y, &g.act, start, end)
	case p.int8Head:
		g.head.MulVecRows(p.y, p.x, start, end)
	case p.act != nil:
		err = p.act.m.MulVecInt8Rows(p.y, &g.act, p.act.absmax, start, end)
	default:
		err = mulRows(p.lin, p.y, p.x, 1, start, end)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p.lin.Name, err)
	}
	return nil
}

// A single-row product is split by weight rows over the team when it has
// at least two chunks: about chunksPerWorker per goroutine, each at least
// splitMinRows rows and splitChunkWeights weights, a multiple of splitAlign
// rows. Attention is split by heads when it reads at least
// splitMinAttention cached values. Handing a chunk to a spinning helper
// costs well under a microsecond, but each claim moves the team's state
// between cores; two chunks per goroutine let one that runs ahead take over
// the work of one that is late (on a busy machine, a helper may not run at
// all). On stories110M with ActivationsInt8 and HeadInt8 at 2 threads,
// BenchmarkDecodeChunksAB measured 2 a step 5–9% faster than 4 and 1–4%
// faster than 1.
const (
	chunksPerWorker   = 2
	splitChunkWeights = 1 << 14
	splitMinRows      = 32
	splitAlign        = 16
	splitMinAttention = 1 << 12
)

// mulRowsSplit computes y = x·Wᵀ for the single row x, split by weight rows
// over the team when the product is large enough; with int8Head it
// multiplies by g.head (or g.act by g.head8), which stands for lin, and
// with int8Act (lin's weight) it multiplies g.act, x's int8 copy.
func (g *Generator) mulRowsSplit(lin *model.Linear, y, x []float32, int8Head bool, int8Act *int8Linear) error {
	rows := g.chunkRows(lin)
	g.fused[0] = fusedPart{lin: lin, y: y, x: x, int8Head: int8Head, act: int8Act, rows: rows}
	g.nFused = 1
	return g.runFused((lin.Out + rows - 1) / rows)
}

// chunkRows returns the number of rows of the chunks lin's single-row
// product is split into; lin.Out (one chunk) means it runs on the calling
// goroutine.
func (g *Generator) chunkRows(lin *model.Linear) int {
	if g.team == nil {
		return lin.Out
	}
	rows := max(splitMinRows, splitChunkWeights/lin.In, lin.Out/(g.chunksPerWorker*g.team.size()))
	rows = (rows + splitAlign - 1) / splitAlign * splitAlign
	if 2*rows > lin.Out {
		return lin.Out
	}
	return rows
}

// ropeRows rotates each of the heads (hd elements each) of n rows of v,
// row i by the angles cos, sin [n, half] of its position (kernels.Rope).
func ropeRows(v, cos, sin []float32, half, n, heads, hd int) {
	w := heads * hd
	for i := range n {
		row := v[i*w : (i+1)*w]
		kernels.Rope(row, row, cos[i*half:(i+1)*half], sin[i*half:(i+1)*half], hd, false)
	}
}

// store copies the keys and values of n new rows, [n, kvDim] each, to
// layer l's cache at positions pos…pos+n−1.
func (g *Generator) store(l int, k, v []float32, n int) {
	hd := g.w.Config.HeadDim
	for h := range g.kvDim / hd {
		at := (h*g.capacity + g.pos) * hd
		for i := range n {
			copy(g.keys[l][at+i*hd:at+(i+1)*hd], k[i*g.kvDim+h*hd:])
			copy(g.values[l][at+i*hd:at+(i+1)*hd], v[i*g.kvDim+h*hd:])
		}
	}
}

// attention computes causal grouped-query attention for the n rows at
// positions pos…pos+n−1 of layer l, whose keys and values are already in the
// cache: row i attends to positions 0…pos+i (with a sliding window W, the
// last W of them, as Mistral does), and query head h reads key and value
// head h/(Heads/KVHeads). Large enough, it is split by heads over the team.
func (g *Generator) attention(l int, out, q []float32, n int) {
	c := &g.w.Config
	g.job = attentionJob{out: out, q: q, layer: l, n: n}
	if g.team == nil || c.Heads == 1 || (g.pos+n)*n*g.qDim < splitMinAttention {
		for h := range c.Heads {
			_ = g.attentionHead(0, h)
		}
		return
	}
	_ = g.team.run(c.Heads, g.attHead) // attention returns no error
}

// attentionHead computes head h of g.job's attention on worker's scratch;
// it returns no error (a team's job function returns one).
func (g *Generator) attentionHead(worker, h int) error {
	c := &g.w.Config
	j := &g.job
	hd := c.HeadDim
	run := h / (c.Heads / c.KVHeads) * g.capacity * hd
	keys, values := g.keys[j.layer][run:], g.values[j.layer][run:]
	for i := range j.n {
		at := i*g.qDim + h*hd
		attendCached(j.out[at:at+hd], g.scores[worker], j.q[at:at+hd], keys, values,
			g.pos+i, c.SlidingWindow, hd)
	}
	return nil
}

// attendCached computes one query head's attention at position pos
// (kernels.AttendCached) over its KV head's keys and values, position t at
// element t·stride: positions 0…pos, or with a sliding window W > 0
// (Mistral) the last W of them. scores holds at least pos+1 elements.
func attendCached(out, scores, q, keys, values []float32, pos, window, stride int) {
	first := 0
	if window > 0 {
		first = max(0, pos+1-window)
	}
	off := first * stride
	kernels.AttendCached(out, scores[:pos+1-first], q, keys[off:], values[off:], stride)
}
