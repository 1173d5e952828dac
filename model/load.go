package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/golora/golora/model/tokenizer"
	"github.com/golora/golora/quant"
)

// Base is a loaded base model: its frozen weights and its tokenizer.
type Base struct {
	Weights *Weights
	// Tokenizer is nil when LoadOptions.WeightsOnly was set.
	Tokenizer tokenizer.Tokenizer
	// Format is where the model came from: one of the Format constants.
	Format string
	// Path is the file or directory loaded; for the embedded model it is
	// DefaultPath.
	Path string

	// hfTokenizer keeps the files a Hugging Face tokenizer was read from,
	// for WriteTokenizer; nil for other tokenizers.
	hfTokenizer *hfTokenizerFiles
	// tokenizerPath is LoadOptions.TokenizerPath of a Hugging Face
	// directory, beside which ChatTemplate looks for tokenizer_config.json.
	tokenizerPath string
	// ggufChat is the chat template a GGUF file carries, nil if none.
	ggufChat *ggufChat
}

// The formats of a base model, as DetectFormat names them.
const (
	FormatHF       = "hf"       // a Hugging Face directory
	FormatLlama2C  = "llama2c"  // a llama2.c .bin checkpoint
	FormatGGUF     = "gguf"     // a llama.cpp .gguf file
	FormatEmbedded = "embedded" // the model Default returns
)

// LoadOptions configures Load.
type LoadOptions struct {
	// TokenizerPath is the tokenizer file. It is required for llama2.c
	// checkpoints, which do not contain one (llama2.c's tokenizer.bin
	// format). For a Hugging Face directory it overrides the directory's
	// tokenizer: a path ending in ".bin" is read as a llama2.c tokenizer,
	// anything else as a tokenizer.json (with the tokenizer_config.json
	// beside it, if any). GGUF files carry their tokenizer, so it must be
	// empty.
	TokenizerPath string
	// WeightsOnly skips the tokenizer (Base.Tokenizer is nil), for callers
	// that only look at the weights; TokenizerPath must then be empty.
	WeightsOnly bool
	// Quantizer, if not nil, quantizes every block linear (see
	// Weights.Linears) stored in float as the checkpoint is read: Hugging
	// Face safetensors (single or sharded) and GGUF files are memory-mapped
	// and streamed tensor by tensor, each linear quantized right after it is
	// converted (one at a time) and the file's pages given back, so
	// that loading never holds the float32 model nor the whole file. The
	// loader keeps the disk reading ahead of it; a Hugging Face checkpoint
	// larger than half the memory available is read with O_DIRECT,
	// bypassing the page cache it would not fit in beside the weights. Linears
	// the checkpoint already stores quantized (bitsandbytes NF4, GGUF block
	// formats) are kept as stored unless Requantize is set. The norms stay
	// float32, and so do the embedding and output head unless the
	// checkpoint (Hugging Face or GGUF) stores them in BF16 or F16: then
	// they keep that type
	// (Weights.EmbeddingMatrix, Output.Quantized, as quant.Half), which is
	// lossless and half the memory (see Float32Embedding).
	Quantizer quant.Quantizer
	// Float32Embedding keeps the embedding and output head in float32 even
	// when Quantizer is set and the checkpoint stores them in 16 bits, and
	// when a GGUF file stores them in a ggml block format (Q8_0, Q6_K, …),
	// which otherwise, without a Quantizer, stay in that format
	// (Weights.EmbeddingMatrix, Output.Quantized, as ggml.Matrix), for
	// callers that read Weights.Embedding or Output.Dense directly. It
	// costs 2 bytes per value more than 16 bits (0.53 GB at Llama-3.2-1B's
	// shape; more than blocks), and the touching of that memory at load.
	Float32Embedding bool
	// Requantize makes Quantizer also convert the block linears a GGUF file
	// stores in a ggml block format (Q8_0, Q4_K, …): dequantized, then
	// quantized again. Without it they are kept in their own format, which
	// trains directly with no second rounding.
	Requantize bool
	// TokenizerOptional loads a Hugging Face directory or llama2.c
	// checkpoint that has no tokenizer with a nil Base.Tokenizer instead of
	// failing, for callers with pre-tokenized input.
	TokenizerOptional bool
}

// DetectFormat names the format of the model at path, as Load reads it: a
// directory is a Hugging Face model, a ".bin" file a llama2.c checkpoint, a
// ".gguf" file a llama.cpp GGUF, and DefaultPath the embedded model.
func DetectFormat(path string) (string, error) {
	if path == DefaultPath {
		return FormatEmbedded, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("model: %w", err)
	}
	switch ext := strings.ToLower(filepath.Ext(path)); {
	case st.IsDir():
		return FormatHF, nil
	case ext == ".bin":
		return FormatLlama2C, nil
	case ext == ".gguf":
		return FormatGGUF, nil
	default:
		return "", fmt.Errorf("model: %s: unknown checkpoint format %q: want a Hugging Face model directory, a llama2.c .bin or a .gguf file", path, ext)
	}
}

// Load reads a base model, choosing the format with DetectFormat: a Hugging
// Face model directory (config.json, safetensors weights, and tokenizer.json
// or, failing that, a llama2.c tokenizer.bin as WriteTokenizer writes for
// SentencePiece vocabularies), a llama2.c checkpoint, a llama.cpp GGUF, or
// the embedded model (DefaultPath). The weights are checked with Validate,
// and the tokenizer must not have more tokens than the model's vocabulary.
// ctx is checked before the weights are read and after them. A Hugging Face
// or GGUF tokenizer is built while the weights load.
func Load(ctx context.Context, path string, opts LoadOptions) (*Base, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("model: loading %s: %w", path, err)
	}
	if opts.WeightsOnly && opts.TokenizerPath != "" {
		return nil, fmt.Errorf("model: %s: LoadOptions.WeightsOnly and TokenizerPath both set", path)
	}
	format, err := DetectFormat(path)
	if err != nil {
		return nil, err
	}
	var b *Base
	switch format {
	case FormatEmbedded:
		b, err = Default()
	case FormatHF:
		b, err = loadHFBase(ctx, path, opts)
	case FormatLlama2C:
		b, err = loadLlama2CBase(ctx, path, opts)
	case FormatGGUF:
		b, err = loadGGUFBase(ctx, path, opts)
	}
	if err != nil {
		return nil, err
	}
	if opts.Quantizer != nil && (format == FormatEmbedded || format == FormatLlama2C) {
		// Small formats read whole: quantize after loading.
		if err := b.Weights.Quantize(ctx, opts.Quantizer); err != nil {
			return nil, fmt.Errorf("model: %s: %w", path, err)
		}
	}
	if opts.WeightsOnly {
		b.Tokenizer, b.hfTokenizer, b.ggufChat = nil, nil, nil
	}
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	return b, nil
}

func loadHFBase(ctx context.Context, dir string, opts LoadOptions) (*Base, error) {
	// A tokenizer.json is parsed on a goroutine of its own while the
	// weights stream in: Llama 3's (128,256 tokens, 280,147 merges) takes
	// 0.4 s of a core alone, and a 1B-shaped checkpoint's load about a
	// second more than its weights when run after them. The weights' error,
	// if any, is still the one returned.
	var waitTokenizer func() (*hfTokenizerFiles, error)
	tokPath := opts.TokenizerPath
	var findErr error
	if !opts.WeightsOnly {
		if tokPath == "" {
			tokPath, findErr = findHFTokenizer(dir)
		}
		if findErr == nil && !strings.EqualFold(filepath.Ext(tokPath), ".bin") {
			waitTokenizer = inBackground(func() (*hfTokenizerFiles, error) { return readHFTokenizer(tokPath) })
		}
	}
	w, err := loadHFStream(ctx, dir, opts.stream())
	var tok *hfTokenizerFiles
	var tokErr error
	if waitTokenizer != nil {
		tok, tokErr = waitTokenizer()
	}
	if err != nil {
		return nil, err
	}
	b := &Base{Weights: w, Format: FormatHF, Path: dir, tokenizerPath: opts.TokenizerPath}
	if opts.WeightsOnly {
		return b, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("model: loading %s: %w", dir, err)
	}
	switch {
	case findErr != nil:
		if opts.TokenizerOptional && errors.Is(findErr, ErrNoTokenizer) {
			return b, nil
		}
		return nil, findErr
	case waitTokenizer == nil: // a llama2.c tokenizer.bin, which needs the vocabulary size
		if b.Tokenizer, err = tokenizer.LoadLlama2C(tokPath, w.Config.VocabSize); err != nil {
			return nil, fmt.Errorf("model: %s: tokenizer: %w", dir, err)
		}
		return b, nil
	case tokErr != nil:
		return nil, tokErr
	}
	b.hfTokenizer = tok
	b.Tokenizer = tok.tok
	return b, nil
}

// inBackground starts f on a goroutine of its own and returns the function
// that waits for its results: a tokenizer is built so while the weights
// load.
func inBackground[T any](f func() (T, error)) func() (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	return func() (T, error) {
		r := <-done
		return r.v, r.err
	}
}

func loadLlama2CBase(ctx context.Context, path string, opts LoadOptions) (*Base, error) {
	if opts.TokenizerPath == "" && !opts.WeightsOnly && !opts.TokenizerOptional {
		return nil, fmt.Errorf("model: %s: a llama2.c checkpoint holds no tokenizer (%w): set LoadOptions.TokenizerPath to its llama2.c tokenizer file (tokenizer.bin, tok512.bin, ...)", path, ErrNoTokenizer)
	}
	w, err := loadLlama2C(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	b := &Base{Weights: w, Format: FormatLlama2C, Path: path}
	if opts.WeightsOnly || opts.TokenizerPath == "" {
		return b, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("model: loading %s: %w", path, err)
	}
	if b.Tokenizer, err = tokenizer.LoadLlama2C(opts.TokenizerPath, w.Config.VocabSize); err != nil {
		return nil, fmt.Errorf("model: %s: tokenizer: %w", path, err)
	}
	return b, nil
}

func loadGGUFBase(ctx context.Context, path string, opts LoadOptions) (*Base, error) {
	if opts.TokenizerPath != "" {
		return nil, fmt.Errorf("model: %s: a GGUF file carries its own tokenizer; LoadOptions.TokenizerPath must be empty", path)
	}
	m, err := loadGGUFStream(ctx, path, opts.stream())
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return &Base{Weights: m.weights, Tokenizer: m.tok, Format: FormatGGUF, Path: path, ggufChat: m.chat}, nil
}

// stream returns the options the streaming loaders apply.
func (o LoadOptions) stream() streamOptions {
	return streamOptions{quantizer: o.Quantizer, requantize: o.Requantize, float32Embedding: o.Float32Embedding, weightsOnly: o.WeightsOnly}
}

func (b *Base) check() error {
	if err := b.Weights.Validate(); err != nil {
		return err
	}
	if err := b.Weights.CheckFinite(); err != nil {
		return err
	}
	if b.Tokenizer == nil {
		return nil
	}
	if n, v := b.Tokenizer.VocabSize(), b.Weights.Config.VocabSize; n > v {
		return fmt.Errorf("tokenizer has %d tokens, more than the model's vocabulary of %d", n, v)
	}
	return nil
}

// Validate checks that every tensor of w is present and shaped as w.Config
// says, that each Linear holds exactly one of dense or quantized data of its
// shape, and that a tied output head aliases the embedding. Errors name the
// tensor, e.g. "model: model.layers.3.self_attn.q_proj: shape [64 63], want
// [64 64]".
func (w *Weights) Validate() error {
	c := w.Config
	switch {
	case c.Dim <= 0 || c.HiddenDim <= 0 || c.Layers <= 0 || c.VocabSize <= 0 || c.MaxSeqLen < 0:
		return fmt.Errorf("model: config: dim %d, hidden %d, layers %d, vocab %d must be positive and max seq len %d non-negative",
			c.Dim, c.HiddenDim, c.Layers, c.VocabSize, c.MaxSeqLen)
	case c.Heads <= 0 || c.KVHeads <= 0 || c.Heads%c.KVHeads != 0:
		return fmt.Errorf("model: config: %d heads and %d KV heads: want positive counts, heads a multiple of KV heads", c.Heads, c.KVHeads)
	case c.HeadDim <= 0 || c.HeadDim%2 != 0:
		return fmt.Errorf("model: config: head dim %d must be positive and even (RoPE rotates pairs)", c.HeadDim)
	case !(c.NormEps >= 0) || !(c.RopeTheta > 0) || math.IsInf(c.NormEps, 0) || math.IsInf(c.RopeTheta, 0):
		return fmt.Errorf("model: config: norm eps %v must be non-negative and rope theta %v positive, both finite", c.NormEps, c.RopeTheta)
	case len(w.Layers) != c.Layers:
		return fmt.Errorf("model: config has %d layers, weights %d", c.Layers, len(w.Layers))
	case c.RotaryDim < 0 || c.RotaryDim > c.HeadDim || c.RotaryDim%2 != 0:
		return fmt.Errorf("model: config: rotary dim %d must be even and within [0, head dim %d]", c.RotaryDim, c.HeadDim)
	case c.SlidingWindow < 0:
		return fmt.Errorf("model: config: sliding window %d is negative", c.SlidingWindow)
	}
	if err := c.RopeScaling.Check(); err != nil {
		return fmt.Errorf("model: config: %w", err)
	}
	if n := len(w.RopeFreqFactors); n != 0 && n != c.Rotary()/2 {
		return fmt.Errorf("model: %d rope frequency factors, want %d", n, c.Rotary()/2)
	}
	if n := len(w.RopeLongFactors); n != 0 && (n != c.Rotary()/2 || c.RopeScaling.Type != "longrope") {
		return fmt.Errorf("model: %d long rope factors with rope scaling %q, want %d with longrope", n, c.RopeScaling.Type, c.Rotary()/2)
	}
	if err := w.checkEmbedding(); err != nil {
		return err
	}
	if err := checkVector("model.norm", w.Norm, c.Dim); err != nil {
		return err
	}
	// The weights have c.Layers layers, so NewWeights(c) is no larger.
	want := NewWeights(c)
	if err := checkLinear(w.Output, want.Output); err != nil {
		return err
	}
	aliases := w.headIsEmbedding()
	if c.TiedOutput != aliases {
		return fmt.Errorf("model: lm_head: config says tied %t, but the head aliasing the embedding is %t", c.TiedOutput, aliases)
	}
	for l := range w.Layers {
		layer := &w.Layers[l]
		prefix := fmt.Sprintf("model.layers.%d.", l)
		if err := checkVector(prefix+"input_layernorm", layer.AttnNorm, c.Dim); err != nil {
			return err
		}
		if err := checkVector(prefix+"post_attention_layernorm", layer.MLPNorm, c.Dim); err != nil {
			return err
		}
		qkNorm := 0
		if c.QKNorm {
			qkNorm = c.HeadDim
		}
		if err := checkVector(prefix+"self_attn.q_norm", layer.QNorm, qkNorm); err != nil {
			return err
		}
		if err := checkVector(prefix+"self_attn.k_norm", layer.KNorm, qkNorm); err != nil {
			return err
		}
		wantLinears := want.Layers[l].Linears()
		for i, nl := range layer.Linears() {
			if err := checkLinear(*nl.Linear, *wantLinears[i].Linear); err != nil {
				return err
			}
			if hasBias := (*nl.Linear).Bias != nil; hasBias != (c.QKVBias && i < 3) {
				return fmt.Errorf("model: %s: bias present %t, config says %t", (*nl.Linear).Name, hasBias, c.QKVBias && i < 3)
			}
		}
	}
	return nil
}

// checkVector checks that a dense tensor has the product of shape elements.
func checkVector(name string, v []float32, shape ...int) error {
	n := 1
	for _, s := range shape {
		n *= s
	}
	if len(v) != n {
		return fmt.Errorf("model: %s: %d values, want shape %v", name, len(v), shape)
	}
	return nil
}

// checkLinear checks that lin is present, named and shaped as want, and
// runnable (Linear.Check).
func checkLinear(lin, want *Linear) error {
	if lin == nil {
		return fmt.Errorf("model: %s is missing", want.Name)
	}
	if lin.Name != want.Name {
		return fmt.Errorf("model: %s: linear is named %q", want.Name, lin.Name)
	}
	if lin.Out != want.Out || lin.In != want.In {
		return fmt.Errorf("model: %s: shape [%d %d], want [%d %d]", want.Name, lin.Out, lin.In, want.Out, want.In)
	}
	return lin.Check()
}

// checkEmbedding checks that the embedding is held once, in Embedding or
// EmbeddingMatrix, shaped [VocabSize, Dim].
func (w *Weights) checkEmbedding() error {
	c := w.Config
	if w.EmbeddingMatrix == nil {
		return checkVector("model.embed_tokens", w.Embedding, c.VocabSize, c.Dim)
	}
	if w.Embedding != nil {
		return errors.New("model: model.embed_tokens: held both in Embedding and in EmbeddingMatrix")
	}
	if r, cols := w.EmbeddingMatrix.Dims(); r != c.VocabSize || cols != c.Dim {
		return fmt.Errorf("model: model.embed_tokens: %s matrix is [%d %d], want [%d %d]", w.EmbeddingMatrix.Format(), r, cols, c.VocabSize, c.Dim)
	}
	return nil
}

// headIsEmbedding reports whether the output head is the embedding itself
// (a tied head): dense weights that alias Embedding, or EmbeddingMatrix.
func (w *Weights) headIsEmbedding() bool {
	if w.Output == nil {
		return false
	}
	if w.Output.Quantized != nil {
		return w.EmbeddingMatrix != nil && w.Output.Quantized == w.EmbeddingMatrix
	}
	d := w.Output.Dense
	return len(d) > 0 && len(d) == len(w.Embedding) && &d[0] == &w.Embedding[0]
}
