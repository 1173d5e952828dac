package model

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/internal/hugemem"
	"github.com/golora/golora/model/tokenizer"
	"github.com/golora/golora/quant"
	"github.com/golora/golora/quant/ggml"
)

// loadGGUF reads a llama.cpp GGUF checkpoint of architecture "llama",
// "mistral", "qwen2" or "qwen3" (see ggufArchs) and its tokenizer
// (tokenizer.ggml.model "llama", SentencePiece, or "gpt2", byte-level BPE).
// The tensors are read (never through the file's mapping) in the order the
// loader converts them, ahead of it, as the Hugging Face loader reads its
// shards: with O_DIRECT when they are too large for the page cache, else
// through it (startRangeLoad); the Weights hold their own copies.
//
// Configuration comes from the <arch>.* metadata (embedding_length,
// feed_forward_length, block_count, attention.head_count[_kv],
// attention.layer_norm_rms_epsilon, rope.freq_base (default 10000),
// context_length, attention.key_length if present, attention.sliding_window,
// rope.scaling.type none or linear with rope.scaling.factor), the vocabulary
// size from the rows of token_embd. Llama 3's rope scaling is the
// rope_freqs.weight tensor (one divisor per frequency, Weights.RopeFreqFactors).
// Qwen2's attn_{q,k,v}.bias and Qwen3's attn_{q,k}_norm are read. Tensors may
// be F32, F16, BF16 or one of the ggml block formats of package quant/ggml
// (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K…Q6_K): block linears in a block format
// stay in it, as frozen ggml.Matrix values that training and generation use
// directly (no second rounding); a block-quantized token_embd or output is
// dequantized to float32. Other tensor types, other rope scalings,
// mixture-of-experts and unknown tensors are errors naming the tensor, never
// silently ignored.
//
// For llama and mistral, llama.cpp stores attn_q and attn_k in the
// interleaved-pairs RoPE layout (its converter permutes Hugging Face
// checkpoints that way, and files converted from llama2.c keep llama2.c's
// rows), so they are permuted into Hugging Face's layout exactly as
// loadLlama2C does; Qwen's use NEOX RoPE and are stored unpermuted. An
// "output" tensor that is byte-for-byte the embedding (as llama.cpp's
// llama2.c converter writes for a shared classifier) is treated as tied:
// Config.TiedOutput is set and the head aliases the embedding, so a GGUF and
// the llama2.c file it was converted from load to identical Weights.
func loadGGUF(path string) (*Weights, tokenizer.Tokenizer, error) {
	m, err := loadGGUFStream(context.Background(), path, streamOptions{})
	if err != nil {
		return nil, nil, err
	}
	return m.weights, m.tok, nil
}

// ggufModel is what a GGUF file holds: weights, tokenizer and chat template.
type ggufModel struct {
	weights *Weights
	tok     tokenizer.Tokenizer
	chat    *ggufChat // nil when the file has no tokenizer.chat_template
}

// loadGGUFStream is loadGGUF quantizing as it reads (see streamOptions).
func loadGGUFStream(ctx context.Context, path string, so streamOptions) (*ggufModel, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := fromGGUF(ctx, f, so)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// parseGGUF is loadGGUF for a file held in memory. The results do not refer
// to data.
func parseGGUF(data []byte) (*Weights, tokenizer.Tokenizer, error) {
	f, err := gguf.Parse(data)
	if err != nil {
		return nil, nil, err
	}
	m, err := fromGGUF(context.Background(), f, streamOptions{})
	if err != nil {
		return nil, nil, err
	}
	return m.weights, m.tok, nil
}

func fromGGUF(ctx context.Context, f *gguf.File, so streamOptions) (*ggufModel, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, err
	}
	ga, err := ggufArchOf(arch)
	if err != nil {
		return nil, err
	}
	cfg, err := ggufConfig(f, ga)
	if err != nil {
		return nil, err
	}
	if cfg.VocabSize, err = ggufVocabSize(f, cfg); err != nil {
		return nil, err
	}
	if so.weightsOnly {
		w, err := ggufWeights(ctx, f, cfg, so, ga)
		if err != nil {
			return nil, err
		}
		return &ggufModel{weights: w}, nil
	}
	// The tokenizer is built while the tensors load: a Llama-3 or Qwen
	// byte-level BPE has 150,000–280,000 merges to index, about a tenth of
	// a second of one core, which the loader's reading leaves free. Its
	// vocabulary is token_embd's rows.
	waitTokenizer := inBackground(func() (tokenizer.Tokenizer, error) { return ggufTokenizer(f, cfg.VocabSize) })
	w, err := ggufWeights(ctx, f, cfg, so, ga)
	tok, tokErr := waitTokenizer()
	if err != nil {
		return nil, err
	}
	if tokErr != nil {
		return nil, tokErr
	}
	chat, err := ggufChatTemplate(f, tok)
	if err != nil {
		return nil, err
	}
	return &ggufModel{weights: w, tok: tok, chat: chat}, nil
}

// ggufConfig reads the configuration from the <arch>.* keys; VocabSize is
// filled in from token_embd.
func ggufConfig(f *gguf.File, ga ggufArch) (Config, error) {
	cfg := Config{Arch: ga.arch, QKVBias: ga.qkvBias, QKNorm: ga.qkNorm}
	k := func(key string) string { return ga.name + "." + key }
	ints := []struct {
		key string
		dst *int
	}{
		{k("embedding_length"), &cfg.Dim},
		{k("feed_forward_length"), &cfg.HiddenDim},
		{k("block_count"), &cfg.Layers},
		{k("attention.head_count"), &cfg.Heads},
		{k("context_length"), &cfg.MaxSeqLen},
	}
	for _, k := range ints {
		n, err := ggufPositiveInt(f, k.key)
		if err != nil {
			return cfg, err
		}
		*k.dst = n
	}
	cfg.KVHeads = cfg.Heads
	if n, err := ggufOptionalInt(f, k("attention.head_count_kv")); err != nil {
		return cfg, err
	} else if n > 0 {
		cfg.KVHeads = n
	}
	keyLength, err := ggufOptionalInt(f, k("attention.key_length"))
	if err != nil {
		return cfg, err
	}
	if keyLength == 0 && cfg.Dim%cfg.Heads != 0 {
		return cfg, fmt.Errorf("gguf: %s %d is not a multiple of %s %d", k("embedding_length"), cfg.Dim, k("attention.head_count"), cfg.Heads)
	}
	cfg.HeadDim = cfg.Dim / cfg.Heads
	if keyLength > 0 {
		cfg.HeadDim = keyLength
	}
	if n, err := ggufOptionalInt(f, k("attention.value_length")); err != nil {
		return cfg, err
	} else if n > 0 && n != cfg.HeadDim {
		return cfg, fmt.Errorf("gguf: %s %d differs from the head dim %d (unequal key and value heads are not supported)", k("attention.value_length"), n, cfg.HeadDim)
	}
	if err := ggufRotaryDim(f, &cfg, ga, k); err != nil {
		return cfg, err
	}
	if cfg.Heads%cfg.KVHeads != 0 {
		return cfg, fmt.Errorf("gguf: %s %d is not a multiple of %s %d", k("attention.head_count"), cfg.Heads, k("attention.head_count_kv"), cfg.KVHeads)
	}
	if cfg.HeadDim%2 != 0 {
		return cfg, fmt.Errorf("gguf: head dim %d is odd; RoPE needs pairs", cfg.HeadDim)
	}
	eps, err := ggufFloat(f, k("attention.layer_norm_rms_epsilon"))
	if err != nil {
		return cfg, err
	}
	if !(eps >= 0) {
		return cfg, fmt.Errorf("gguf: %s %v is not a non-negative number", k("attention.layer_norm_rms_epsilon"), eps)
	}
	cfg.NormEps = eps
	cfg.RopeTheta = llama2cRopeTheta // llama.cpp's default when the key is absent
	if theta, err := ggufFloat(f, k("rope.freq_base")); err == nil {
		if !(theta > 0) {
			return cfg, fmt.Errorf("gguf: %s %v is not positive", k("rope.freq_base"), theta)
		}
		cfg.RopeTheta = theta
	} else if !errors.Is(err, gguf.ErrKeyNotFound) {
		return cfg, err
	}
	if err := ggufRopeScaling(f, &cfg, ga, k); err != nil {
		return cfg, err
	}
	if window, err := ggufOptionalInt(f, k("attention.sliding_window")); err != nil {
		return cfg, err
	} else if window > 0 {
		cfg.SlidingWindow = window
	}
	if n, err := ggufOptionalInt(f, k("expert_count")); err != nil {
		return cfg, err
	} else if n > 0 {
		return cfg, fmt.Errorf("gguf: %s %d: mixture-of-experts models are not supported", k("expert_count"), n)
	}
	return cfg, nil
}

// ggufFloat reads a float metadata value. A float32 is widened to the float64
// with the shortest decimal form that rounds to it, so that 1e-5 stored as
// float32 reads back as 1e-5 (the value the model was configured with) rather
// than 9.99999974e-6, and Configs from GGUF and other formats compare equal.
func ggufFloat(f *gguf.File, key string) (float64, error) {
	x, err := f.Float(key)
	if err != nil {
		return 0, err
	}
	if v, _ := f.Lookup(key); v.Type() == gguf.TypeFloat32 {
		x, _ = strconv.ParseFloat(strconv.FormatFloat(x, 'g', -1, 32), 64)
	}
	return x, nil
}

// ggufPositiveInt reads a required integer key that must be positive.
func ggufPositiveInt(f *gguf.File, key string) (int, error) {
	n, err := f.Int(key)
	if err != nil {
		return 0, err
	}
	if n <= 0 || n > 1<<31 {
		return 0, fmt.Errorf("gguf: %s is %d, want a positive count below 2^31", key, n)
	}
	return int(n), nil
}

// ggufOptionalInt reads an optional count: 0 when absent, an error when it is
// present but not a non-negative integer below 2^31.
func ggufOptionalInt(f *gguf.File, key string) (int, error) {
	if _, ok := f.Lookup(key); !ok {
		return 0, nil
	}
	n, err := f.Int(key)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > 1<<31 {
		return 0, fmt.Errorf("gguf: %s is %d, want a count below 2^31", key, n)
	}
	return int(n), nil
}

// ggufLinearNames are GGUF's names of a block's linears, in the order of
// Layer.Linears.
var ggufLinearNames = [len(modules)]string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}

// ggufVocabSize returns the vocabulary size, token_embd.weight's rows,
// checking that the tensor is a [vocab, cfg.Dim] matrix.
func ggufVocabSize(f *gguf.File, cfg Config) (int, error) {
	emb, ok := f.Tensor("token_embd.weight")
	if !ok {
		return 0, errors.New("gguf: tensor token_embd.weight is missing")
	}
	shape := emb.Shape()
	if len(shape) != 2 || shape[1] != cfg.Dim || shape[0] <= 0 {
		return 0, fmt.Errorf("gguf: tensor token_embd.weight: shape %v, want [vocab %d]", shape, cfg.Dim)
	}
	return shape[0], nil
}

// ggufWeights reads the weights of the model cfg describes, whose
// VocabSize ggufVocabSize has filled in.
func ggufWeights(ctx context.Context, f *gguf.File, cfg Config, so streamOptions, ga ggufArch) (*Weights, error) {
	// Every block has 9 tensors (6 with fused projections); checking the
	// count first keeps a corrupt block_count from allocating billions of
	// empty layers.
	perBlock := 9
	if ga.fused {
		perBlock = 6
	}
	if n := len(f.Tensors()); cfg.Layers > n/perBlock {
		return nil, fmt.Errorf("gguf: %s.block_count %d needs %d block tensors, the file has %d tensors in all", ga.name, cfg.Layers, perBlock*cfg.Layers, n)
	}
	if n, err := ggufOptionalInt(f, ga.name+".vocab_size"); err != nil {
		return nil, err
	} else if n > 0 && n != cfg.VocabSize {
		return nil, fmt.Errorf("gguf: %s.vocab_size %d differs from the %d rows of token_embd.weight", ga.name, n, cfg.VocabSize)
	}

	cfg.TiedOutput = true
	if _, ok := f.Tensor("output.weight"); ok {
		same, err := sameTensorData(f, "token_embd.weight", "output.weight")
		if err != nil {
			return nil, err
		}
		cfg.TiedOutput = same
	}

	return ggufTensors(ctx, f, cfg, so, ga)
}

// ggufPlan lists the tensors ggufTensors reads, in the order it reads them,
// each with what to do with its bytes, so that they can be read ahead of
// the loader as one stream of ranges (startRangeLoad: with O_DIRECT when
// they are too large for the page cache, as the Hugging Face loader reads
// its shards). Planning looks up every tensor and checks its shape before
// any is read, so that a bad file fails before the long part of the load.
type ggufPlan struct {
	f     *gguf.File
	want  map[string]bool // the tensors the model uses (checkNoExtraTensors)
	steps []ggufStep
	// checks run once every step has, on the values the steps read.
	checks []func() error
}

// ggufStep is one tensor to read: its bytes in the file, and what reads
// them, given raw, the tensorFile that reads it and the quantizing worker
// when there is a quantizer.
type ggufStep struct {
	raw  []byte
	read func(raw []byte, file tensorFile, sq *streamQuantizer) error
}

// info returns tensor name, checking its shape, and records that the model
// uses it.
func (p *ggufPlan) info(name string, shape ...int) (gguf.TensorInfo, error) {
	p.want[name] = true
	t, ok := p.f.Tensor(name)
	if !ok {
		return t, fmt.Errorf("gguf: tensor %s is missing", name)
	}
	if got := t.Shape(); !slices.Equal(got, shape) {
		return t, fmt.Errorf("gguf: tensor %s: shape %v, want %v", name, got, shape)
	}
	return t, nil
}

// add plans reading tensor t: read gets its bytes in the file (which only
// file may read: they are a part of the mapping) and what reads them.
func (p *ggufPlan) add(t gguf.TensorInfo, read func(raw []byte, file tensorFile, sq *streamQuantizer) error) error {
	raw, err := p.f.TensorBytes(t.Name)
	if err != nil {
		return err
	}
	p.steps = append(p.steps, ggufStep{raw: raw, read: read})
	return nil
}

// load plans reading tensor name, of the given shape, into new float32
// values stored in *dst.
func (p *ggufPlan) load(dst *[]float32, name string, shape ...int) error {
	t, err := p.info(name, shape...)
	if err != nil {
		return err
	}
	return p.add(t, func(raw []byte, file tensorFile, _ *streamQuantizer) error {
		out := hugemem.Make[float32](int(t.NumElements()))
		if _, err := ggufFloat32s(t, raw, file, out); err != nil {
			return err
		}
		*dst = out
		return nil
	})
}

// run reads the planned tensors in order (see startRangeLoad), then runs the
// checks.
func (p *ggufPlan) run(ctx context.Context, so streamOptions) (err error) {
	ranges := make([]streamRange, len(p.steps))
	for i, s := range p.steps {
		ranges[i] = streamRange{p.f, s.raw}
	}
	ra := startRangeLoad(ctx, ranges, so)
	defer func() { err = ra.finish(err) }()
	for i, s := range p.steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("gguf: loading: %w", err)
		}
		if err := s.read(s.raw, ra.file(i), ra.sq); err != nil {
			return err
		}
	}
	return nil
}

// ggufTensors reads the tensors of the model cfg describes. Dense tensors
// become float32 (but with a quantizer an F16 or BF16 embedding and head
// stay 16-bit: keepGGUF16); block-quantized linears stay in their ggml
// format (or, with so.requantize, go through so.quantizer), and so do a
// block-quantized embedding and head without a quantizer
// (keepGGUFBlocks), else they become float32. Every tensor is read
// through ReadData, never through the file mapping, in one planned order
// (ggufPlan).
func ggufTensors(ctx context.Context, f *gguf.File, cfg Config, so streamOptions, ga ggufArch) (*Weights, error) {
	w := NewWeights(cfg)
	p := &ggufPlan{f: f, want: map[string]bool{}}
	// The embedding and an untied head, 16-bit ones kept so (keepGGUF16).
	// With a quantizer they are read after the blocks, into memory that a
	// goroutine populates while the block linears stream through the worker
	// (prefault.go); otherwise first, where the file stores them.
	vocab := []struct {
		name string
		head bool
	}{{"token_embd.weight", false}, {"output.weight", true}}
	if cfg.TiedOutput {
		p.want["output.weight"] = true
		vocab = vocab[:1]
	}
	// words is the float32-sized words a vocabulary matrix takes: half its
	// elements when kept 16-bit.
	words := func(t gguf.TensorInfo) int {
		if keepGGUF16(so, t) {
			return cfg.VocabSize * cfg.Dim / 2
		}
		return cfg.VocabSize * cfg.Dim
	}
	var ahead [][]float32
	if so.quantizer != nil {
		for _, v := range vocab { // checked before streaming the blocks
			t, err := p.info(v.name, cfg.VocabSize, cfg.Dim)
			if err != nil {
				return nil, err
			}
			if n := words(t); n >= cmp.Or(so.prefaultMin, prefaultMin) {
				ahead = append(ahead, hugemem.Make[float32](n))
			}
		}
		if len(ahead) < len(vocab) {
			ahead = nil
		}
		defer populateAll(ahead)()
	}
	planVocab := func() error {
		for i, v := range vocab {
			t, err := p.info(v.name, cfg.VocabSize, cfg.Dim)
			if err != nil {
				return err
			}
			var dest []float32
			if ahead != nil {
				dest = ahead[i]
			}
			// keep holds the tensor as the quantized head or embedding.
			keep := func(m quant.Matrix, finite bool) {
				if v.head {
					w.Output.Quantized, w.Output.finite = m, finite
				} else {
					w.EmbeddingMatrix, w.embeddingFinite = m, finite
				}
			}
			err = p.add(t, func(raw []byte, file tensorFile, _ *streamQuantizer) error {
				if keepGGUFBlocks(so, t) {
					m, err := ggufBlocks(t.Name, t, raw, file, cfg.VocabSize, cfg.Dim, nil)
					if err != nil {
						return err
					}
					keep(m, true)
					return nil
				}
				if keepGGUF16(so, t) {
					m, finite, err := ggufHalf(t, raw, file, cfg.VocabSize, cfg.Dim, dest)
					if err != nil {
						return err
					}
					keep(m, finite)
					return nil
				}
				if dest == nil {
					dest = hugemem.Make[float32](words(t))
				}
				if _, err := ggufFloat32s(t, raw, file, dest); err != nil {
					return err
				}
				if v.head {
					w.Output.Dense = dest
				} else {
					w.Embedding = dest
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	if ahead == nil {
		if err := planVocab(); err != nil {
			return nil, err
		}
	}
	if err := p.load(&w.Norm, "output_norm.weight", cfg.Dim); err != nil {
		return nil, err
	}
	for l := range w.Layers {
		layer := &w.Layers[l]
		blk := func(s string) string { return fmt.Sprintf("blk.%d.%s.weight", l, s) }
		if err := p.load(&layer.AttnNorm, blk("attn_norm"), cfg.Dim); err != nil {
			return nil, err
		}
		if err := p.load(&layer.MLPNorm, blk("ffn_norm"), cfg.Dim); err != nil {
			return nil, err
		}
		for i, nl := range layer.Linears() {
			if ga.fused && ggufFusedPart(i) {
				continue
			}
			lin := *nl.Linear
			t, err := p.info(blk(ggufLinearNames[i]), lin.Out, lin.In)
			if err != nil {
				return nil, err
			}
			if err := ggufLinear(p, t, lin, ga.permutedHeads(i, cfg), cfg.HeadDim, so); err != nil {
				return nil, err
			}
		}
		if ga.fused {
			if err := ggufFusedLinears(p, layer, blk, so); err != nil {
				return nil, err
			}
		}
		if err := ggufArchTensors(p, layer, l, cfg); err != nil {
			return nil, err
		}
	}
	if ahead != nil {
		if err := planVocab(); err != nil {
			return nil, err
		}
	}
	if err := ggufRopeFreqs(p, w); err != nil {
		return nil, err
	}
	if err := ggufLongRopeFactors(p, w); err != nil {
		return nil, err
	}
	if err := checkNoExtraTensors(f, p.want); err != nil {
		return nil, err
	}
	if err := p.run(ctx, so); err != nil {
		return nil, err
	}
	for _, check := range p.checks {
		if err := check(); err != nil {
			return nil, err
		}
	}
	switch {
	case cfg.TiedOutput && w.EmbeddingMatrix != nil:
		w.Output.Quantized = w.EmbeddingMatrix
	case cfg.TiedOutput:
		w.Output.Dense = w.Embedding
	}
	return w, nil
}

// ggufLinear plans reading lin from tensor t. A block-quantized tensor is
// kept in its format (rows permuted for a query or key projection,
// heads > 0), unless so.requantize asks the quantizer to quantize it again;
// a float tensor is quantized by the worker if there is a quantizer, else
// kept dense.
func ggufLinear(p *ggufPlan, t gguf.TensorInfo, lin *Linear, heads, headDim int, so streamOptions) error {
	permute := func(w []float32) error {
		if heads == 0 {
			return nil
		}
		if err := interleavedToHalves(w, heads, headDim, lin.In); err != nil {
			return fmt.Errorf("gguf: tensor %s: %w", t.Name, err)
		}
		return nil
	}
	if ggml.Type(t.Type).Supported() && (so.quantizer == nil || !so.requantize) {
		return p.add(t, func(raw []byte, file tensorFile, _ *streamQuantizer) error {
			var permute func([]byte) error
			if heads > 0 {
				permute = func(data []byte) error { return interleavedToHalves(data, heads, headDim, len(data)/lin.Out) }
			}
			m, err := ggufBlocks(t.Name, t, raw, file, lin.Out, lin.In, permute)
			if err != nil {
				return err
			}
			lin.Quantized, lin.finite = m, true
			return nil
		})
	}
	return p.add(t, func(raw []byte, file tensorFile, sq *streamQuantizer) error {
		fill := func(dst []float32) (bool, error) {
			finite, err := ggufFloat32s(t, raw, file, dst)
			if err != nil {
				return false, err
			}
			return finite, permute(dst)
		}
		if sq != nil {
			return sq.add(quantizeJob{lin: lin, where: "tensor " + t.Name, fill: fill})
		}
		lin.Dense = hugemem.Make[float32](lin.Out * lin.In)
		_, err := fill(lin.Dense)
		return err
	})
}

// ggufBlocks returns the matrix name, [rows, cols], of a ggml block format,
// from a copy of raw (bytes of tensor t) read through file and, unless
// permute is nil, permuted in place by it. ggml.New checks every block's
// scales, so the matrix's values are finite.
func ggufBlocks(name string, t gguf.TensorInfo, raw []byte, file tensorFile, rows, cols int, permute func([]byte) error) (*ggml.Matrix, error) {
	data := make([]byte, len(raw))
	if err := file.ReadData(data, raw); err != nil {
		return nil, fmt.Errorf("gguf: tensor %s: %w", t.Name, err)
	}
	if permute != nil {
		if err := permute(data); err != nil {
			return nil, fmt.Errorf("gguf: tensor %s: %w", t.Name, err)
		}
	}
	m, err := ggml.New(name, ggml.Type(t.Type), rows, cols, data)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	return m, nil
}

// ggufFloat32s converts tensor t, whose bytes raw are read through file, to
// float32 into dst (t's element count), piece by piece: F32, F16 and BF16
// directly, ggml block formats by dequantizing (bit for bit as ggml does).
// Any other type is an error naming the tensor. It reports whether the
// values were checked to be finite.
func ggufFloat32s(t gguf.TensorInfo, raw []byte, file tensorFile, dst []float32) (finite bool, err error) {
	rows, cols, err := t.RowsCols()
	if err != nil {
		return false, err
	}
	return ggufFloat32Rows(t, raw, file, rows, cols, 0, rows, dst)
}

// ggufFloat32Rows is ggufFloat32s for rows r0..r1 of matrix t (rows of cols
// values) into dst ((r1-r0)·cols): a fused tensor's part is converted into
// its own buffer straight from the file, so that no float32 copy of the
// whole fused tensor is ever held. Every unit of a decoder lies within one
// row, so the values are those of converting the whole tensor, bit for bit.
func ggufFloat32Rows(t gguf.TensorInfo, raw []byte, file tensorFile, rows, cols, r0, r1 int, dst []float32) (finite bool, err error) {
	where := t.Name
	if r0 != 0 || r1 != rows {
		where = fmt.Sprintf("%s rows %d..%d", t.Name, r0, r1)
	}
	dec, err := ggufDecoder(t)
	if err != nil {
		return false, err
	}
	units, whole := dec.units(cols)
	if !whole || len(raw) != rows*units*dec.size || r0 < 0 || r0 > r1 || r1 > rows || len(dst) != (r1-r0)*cols {
		return false, fmt.Errorf("gguf: tensor %s: %d bytes of %v data for %d values (rows of %d) into %d", where, len(raw), t.Type, rows*cols, cols, len(dst))
	}
	rowBytes := units * dec.size
	finite, err = decodeStreaming(dst, raw[r0*rowBytes:r1*rowBytes], dec, file)
	if err != nil {
		return false, fmt.Errorf("gguf: tensor %s: %w", where, err)
	}
	return finite, nil
}

// ggufDecoder returns the floatDecoder of tensor t's type, or an error
// naming the tensor for a type golora does not read.
func ggufDecoder(t gguf.TensorInfo) (floatDecoder, error) {
	switch t.Type {
	case gguf.TypeF32:
		return decodeF32, nil
	case gguf.TypeF16:
		return decodeF16, nil
	case gguf.TypeBF16:
		return decodeBF16, nil
	}
	if !ggml.Type(t.Type).Supported() {
		return floatDecoder{}, fmt.Errorf("gguf: tensor %s has type %v, which golora does not read (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K…Q6_K)", t.Name, t.Type)
	}
	_, cols, err := t.RowsCols()
	if err != nil {
		return floatDecoder{}, err
	}
	dec, err := ggmlRows(t.Name, ggml.Type(t.Type), cols)
	if err != nil {
		return floatDecoder{}, fmt.Errorf("gguf: tensor %s: %w", t.Name, err)
	}
	return dec, nil
}

// ggmlRows returns the floatDecoder of rows of cols values of tensor name
// in ggml block type typ: a unit is a row, so that a piece's rows are
// dequantized where they were read, without a copy of the whole tensor.
func ggmlRows(name string, typ ggml.Type, cols int) (floatDecoder, error) {
	rowBytes, err := typ.RowBytes(cols)
	if err != nil {
		return floatDecoder{}, err
	}
	return floatDecoder{size: rowBytes, elems: cols, decodeChecked: func(dst []float32, src []byte, first int) error {
		rows := len(src) / rowBytes
		m, err := ggml.New(name, typ, rows, cols, src)
		if err == nil {
			err = m.DequantizeRows(dst, 0, rows)
		}
		if err != nil {
			return fmt.Errorf("rows %d..%d: %w", first, first+rows, err)
		}
		return nil
	}}, nil
}

// checkNoExtraTensors refuses tensors of f that the loader did not read
// (want): biases and other extras of architectures this package does not run.
func checkNoExtraTensors(f *gguf.File, want map[string]bool) error {
	var extra []string
	for _, t := range f.Tensors() {
		if !want[t.Name] {
			extra = append(extra, t.Name)
		}
	}
	if len(extra) > 0 {
		const shown = 5
		more := ""
		if len(extra) > shown {
			more = fmt.Sprintf(" and %d more", len(extra)-shown)
			extra = extra[:shown]
		}
		return fmt.Errorf("gguf: unexpected tensors %s%s for this architecture (golora does not know what to do with them)",
			strings.Join(extra, ", "), more)
	}
	return nil
}

// sameTensorData reports whether two tensors have the same type, dims and
// bytes. It reads them piece by piece (pread), not through the mapping, and
// stops at the first piece that differs: an untied head differs from the
// embedding in its first bytes, so only a tied one is read whole.
func sameTensorData(f *gguf.File, a, b string) (bool, error) {
	ta, _ := f.Tensor(a)
	tb, _ := f.Tensor(b)
	if ta.Type != tb.Type || !slices.Equal(ta.Dims, tb.Dims) {
		return false, nil
	}
	ra, err := f.TensorBytes(a)
	if err != nil {
		return false, err
	}
	rb, err := f.TensorBytes(b)
	if err != nil {
		return false, err
	}
	const piece = 64 << 10
	bufA, bufB := make([]byte, piece), make([]byte, piece)
	for off := 0; off < len(ra); off += piece {
		end := min(off+piece, len(ra))
		if err := f.ReadData(bufA, ra[off:end]); err != nil {
			return false, fmt.Errorf("gguf: tensor %s: %w", a, err)
		}
		if err := f.ReadData(bufB, rb[off:end]); err != nil {
			return false, fmt.Errorf("gguf: tensor %s: %w", b, err)
		}
		if !bytes.Equal(bufA[:end-off], bufB[:end-off]) {
			return false, nil
		}
	}
	return true, nil
}

// ggufTokenizer builds the SentencePiece tokenizer from tokenizer.ggml.*.
// Scores default to zero and token types to normal (1) when absent; BOS and
// EOS default to llama.cpp's SentencePiece defaults 1 and 2.
func ggufTokenizer(f *gguf.File, vocab int) (tokenizer.Tokenizer, error) {
	model, err := f.String("tokenizer.ggml.model")
	if err != nil {
		return nil, err
	}
	switch model {
	case "llama":
	case "gpt2":
		return ggufByteLevelBPE(f, vocab)
	default:
		return nil, fmt.Errorf("gguf: tokenizer.ggml.model %q is not supported (only \"llama\", SentencePiece, and \"gpt2\", byte-level BPE)", model)
	}
	pieces, err := ggufTokens(f, vocab)
	if err != nil {
		return nil, err
	}
	scores := make([]float32, len(pieces))
	if _, ok := f.Lookup("tokenizer.ggml.scores"); ok {
		if scores, err = f.Float32s("tokenizer.ggml.scores"); err != nil {
			return nil, err
		}
	}
	types := make([]int32, len(pieces))
	for i := range types {
		types[i] = 1
	}
	if _, ok := f.Lookup("tokenizer.ggml.token_type"); ok {
		if types, err = f.Int32s("tokenizer.ggml.token_type"); err != nil {
			return nil, err
		}
	}
	if len(scores) != len(pieces) || len(types) != len(pieces) {
		return nil, fmt.Errorf("gguf: tokenizer.ggml: %d tokens but %d scores and %d token types", len(pieces), len(scores), len(types))
	}
	special := func(key string, def int) (int, error) {
		if _, ok := f.Lookup(key); !ok {
			return def, nil
		}
		n, err := f.Int(key)
		if err != nil {
			return 0, err
		}
		if n < 0 || n >= int64(len(pieces)) {
			return 0, fmt.Errorf("gguf: %s %d is outside the %d-token vocabulary", key, n, len(pieces))
		}
		return int(n), nil
	}
	bos, err := special("tokenizer.ggml.bos_token_id", 1)
	if err != nil {
		return nil, err
	}
	eos, err := special("tokenizer.ggml.eos_token_id", 2)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.NewSentencePiece(pieces, scores, types, bos, eos)
	if err != nil {
		return nil, fmt.Errorf("gguf: tokenizer: %w", err)
	}
	return tok, nil
}

// ggufTokens reads tokenizer.ggml.tokens, which must not have more tokens
// than token_embd.weight has rows (vocab). Llama-3 and Qwen files pad the
// embedding beyond the vocabulary; SentencePiece files match it exactly.
func ggufTokens(f *gguf.File, vocab int) ([]string, error) {
	pieces, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil {
		return nil, err
	}
	if len(pieces) != vocab {
		return nil, fmt.Errorf("gguf: tokenizer.ggml.tokens has %d tokens, token_embd.weight %d rows", len(pieces), vocab)
	}
	return pieces, nil
}

// ggufByteLevelBPE builds the byte-level BPE tokenizer of a "gpt2"
// tokenizer.ggml.model (Llama 3, Qwen, SmolLM): tokens, merges and the
// pre-tokenizer name (tokenizer.ggml.pre, "gpt-2" when absent, as llama.cpp
// defaults), token types if present, BOS and EOS (none when absent), and
// tokenizer.ggml.add_bos_token (false when absent).
func ggufByteLevelBPE(f *gguf.File, vocab int) (tokenizer.Tokenizer, error) {
	c := tokenizer.ByteLevelBPEConfig{Pre: "gpt-2", BOS: -1, EOS: -1}
	var err error
	if c.Tokens, err = ggufTokens(f, vocab); err != nil {
		return nil, err
	}
	if c.Merges, err = f.Strings("tokenizer.ggml.merges"); err != nil {
		return nil, err
	}
	if _, ok := f.Lookup("tokenizer.ggml.pre"); ok {
		if c.Pre, err = f.String("tokenizer.ggml.pre"); err != nil {
			return nil, err
		}
	}
	if _, ok := f.Lookup("tokenizer.ggml.token_type"); ok {
		if c.Types, err = f.Int32s("tokenizer.ggml.token_type"); err != nil {
			return nil, err
		}
		if len(c.Types) != len(c.Tokens) {
			return nil, fmt.Errorf("gguf: tokenizer.ggml: %d tokens but %d token types", len(c.Tokens), len(c.Types))
		}
	}
	for _, sp := range []struct {
		key string
		dst *int
	}{{"tokenizer.ggml.bos_token_id", &c.BOS}, {"tokenizer.ggml.eos_token_id", &c.EOS}} {
		if _, ok := f.Lookup(sp.key); !ok {
			continue
		}
		n, err := f.Int(sp.key)
		if err != nil {
			return nil, err
		}
		if n < 0 || n >= int64(len(c.Tokens)) {
			return nil, fmt.Errorf("gguf: %s %d is outside the %d-token vocabulary", sp.key, n, len(c.Tokens))
		}
		*sp.dst = int(n)
	}
	if _, ok := f.Lookup("tokenizer.ggml.add_bos_token"); ok {
		if c.AddBOS, err = f.Bool("tokenizer.ggml.add_bos_token"); err != nil {
			return nil, err
		}
	}
	tok, err := tokenizer.NewByteLevelBPE(c)
	if err != nil {
		return nil, fmt.Errorf("gguf: tokenizer: %w", err)
	}
	return tok, nil
}
