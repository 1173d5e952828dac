package model

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/model/tokenizer"
)

// loadGGUF reads a llama.cpp GGUF checkpoint of architecture "llama",
// "mistral", "qwen2" or "qwen3" (see ggufArchs) and its tokenizer
// (tokenizer.ggml.model "llama", SentencePiece, or "gpt2", byte-level BPE).
// The file is memory-mapped while it is read; the Weights hold their own
// copies.
//
// Configuration comes from the <arch>.* metadata (embedding_length,
// feed_forward_length, block_count, attention.head_count[_kv],
// attention.layer_norm_rms_epsilon, rope.freq_base (default 10000),
// context_length, attention.key_length if present, attention.sliding_window,
// rope.scaling.type none or linear with rope.scaling.factor), the vocabulary
// size from the rows of token_embd. Llama 3's rope scaling is the
// rope_freqs.weight tensor (one divisor per frequency, Weights.RopeFreqFactors).
// Qwen2's attn_{q,k,v}.bias and Qwen3's attn_{q,k}_norm are read. Tensors may
// be F32, F16 or BF16; quantized ggml types, other rope scalings,
// mixture-of-experts and unknown tensors are errors, never silently ignored.
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
	f, err := gguf.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	w, tok, err := fromGGUF(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return w, tok, nil
}

// parseGGUF is loadGGUF for a file held in memory. The results do not refer
// to data.
func parseGGUF(data []byte) (*Weights, tokenizer.Tokenizer, error) {
	f, err := gguf.Parse(data)
	if err != nil {
		return nil, nil, err
	}
	return fromGGUF(f)
}

func fromGGUF(f *gguf.File) (*Weights, tokenizer.Tokenizer, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, nil, err
	}
	ga, err := ggufArchOf(arch)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := ggufConfig(f, ga)
	if err != nil {
		return nil, nil, err
	}
	w, err := ggufWeights(f, cfg, ga)
	if err != nil {
		return nil, nil, err
	}
	tok, err := ggufTokenizer(f, w.Config.VocabSize)
	if err != nil {
		return nil, nil, err
	}
	return w, tok, nil
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
	for _, key := range []string{k("attention.value_length"), k("rope.dimension_count")} {
		if n, err := ggufOptionalInt(f, key); err != nil {
			return cfg, err
		} else if n > 0 && n != cfg.HeadDim {
			return cfg, fmt.Errorf("gguf: %s %d differs from the head dim %d (partial rotary or unequal key/value heads are not supported)", key, n, cfg.HeadDim)
		}
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
	if err := ggufRopeScaling(f, &cfg, k); err != nil {
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

func ggufWeights(f *gguf.File, cfg Config, ga ggufArch) (*Weights, error) {
	emb, ok := f.Tensor("token_embd.weight")
	if !ok {
		return nil, errors.New("gguf: tensor token_embd.weight is missing")
	}
	if shape := emb.Shape(); len(shape) != 2 || shape[1] != cfg.Dim || shape[0] <= 0 {
		return nil, fmt.Errorf("gguf: tensor token_embd.weight: shape %v, want [vocab %d]", shape, cfg.Dim)
	}
	cfg.VocabSize = emb.Shape()[0]
	// Every block has 9 tensors; checking the count first keeps a corrupt
	// block_count from allocating billions of empty layers.
	if n := len(f.Tensors()); cfg.Layers > n/9 {
		return nil, fmt.Errorf("gguf: %s.block_count %d needs %d block tensors, the file has %d tensors in all", ga.name, cfg.Layers, 9*cfg.Layers, n)
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

	w := NewWeights(cfg)
	want := map[string]bool{}
	load := func(name string, shape ...int) ([]float32, error) {
		want[name] = true
		t, ok := f.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("gguf: tensor %s is missing", name)
		}
		if got := t.Shape(); !slices.Equal(got, shape) {
			return nil, fmt.Errorf("gguf: tensor %s: shape %v, want %v", name, got, shape)
		}
		return f.TensorFloat32(name)
	}
	var err error
	if w.Embedding, err = load("token_embd.weight", cfg.VocabSize, cfg.Dim); err != nil {
		return nil, err
	}
	if w.Norm, err = load("output_norm.weight", cfg.Dim); err != nil {
		return nil, err
	}
	if cfg.TiedOutput {
		want["output.weight"] = true
		w.Output.Dense = w.Embedding
	} else if w.Output.Dense, err = load("output.weight", cfg.VocabSize, cfg.Dim); err != nil {
		return nil, err
	}
	for l := range w.Layers {
		layer := &w.Layers[l]
		blk := func(s string) string { return fmt.Sprintf("blk.%d.%s.weight", l, s) }
		if layer.AttnNorm, err = load(blk("attn_norm"), cfg.Dim); err != nil {
			return nil, err
		}
		if layer.MLPNorm, err = load(blk("ffn_norm"), cfg.Dim); err != nil {
			return nil, err
		}
		for i, nl := range layer.Linears() {
			lin := *nl.Linear
			if lin.Dense, err = load(blk(ggufLinearNames[i]), lin.Out, lin.In); err != nil {
				return nil, err
			}
		}
		if err := ggufArchTensors(layer, l, cfg, load); err != nil {
			return nil, err
		}
		if !ga.permuted {
			continue
		}
		if err := interleavedToHalves(layer.Q.Dense, cfg.Heads, cfg.HeadDim, cfg.Dim); err != nil {
			return nil, fmt.Errorf("gguf: tensor %s: %w", blk("attn_q"), err)
		}
		if err := interleavedToHalves(layer.K.Dense, cfg.KVHeads, cfg.HeadDim, cfg.Dim); err != nil {
			return nil, fmt.Errorf("gguf: tensor %s: %w", blk("attn_k"), err)
		}
	}
	if err := ggufRopeFreqs(f, w, load); err != nil {
		return nil, err
	}
	if err := checkNoExtraTensors(f, want); err != nil {
		return nil, err
	}
	return w, nil
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
// bytes.
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
	return bytes.Equal(ra, rb), nil
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
	pieces, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil {
		return nil, err
	}
	if len(pieces) != vocab {
		return nil, fmt.Errorf("gguf: tokenizer.ggml.tokens has %d tokens, token_embd.weight %d rows", len(pieces), vocab)
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
