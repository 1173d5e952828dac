package model

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/golora/golora/model/tokenizer"
)

// Checkpoint is a loaded base model: its frozen weights and its tokenizer.
type Checkpoint struct {
	Weights   *Weights
	Tokenizer tokenizer.Tokenizer
	// Format is where the model came from: "hf", "llama2c", "gguf" or
	// "embedded".
	Format string
	// Path is the file or directory loaded; for the embedded model it is
	// "embedded:stories260K".
	Path string

	// hfTokenizer keeps the files a Hugging Face tokenizer was read from,
	// for WriteTokenizer; nil for other tokenizers.
	hfTokenizer *hfTokenizerFiles
}

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
	// TokenizerOptional loads a Hugging Face directory or llama2.c
	// checkpoint that has no tokenizer with a nil Checkpoint.Tokenizer
	// instead of failing, for callers with pre-tokenized input.
	TokenizerOptional bool
}

// Load reads a checkpoint, choosing the format from path: a directory is a
// Hugging Face model (config.json, safetensors weights, and tokenizer.json or,
// failing that, a llama2.c tokenizer.bin as WriteTokenizer writes for
// SentencePiece vocabularies), a ".bin" file a llama2.c checkpoint and a
// ".gguf" file a llama.cpp GGUF. The weights are checked with Validate, and
// the tokenizer must not have more tokens than the model's vocabulary.
func Load(path string, opts LoadOptions) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	var ck *Checkpoint
	switch ext := strings.ToLower(filepath.Ext(path)); {
	case st.IsDir():
		ck, err = loadHFCheckpoint(path, opts)
	case ext == ".bin":
		ck, err = loadLlama2CCheckpoint(path, opts)
	case ext == ".gguf":
		ck, err = loadGGUFCheckpoint(path, opts)
	default:
		return nil, fmt.Errorf("model: %s: unknown checkpoint format %q: want a Hugging Face model directory, a llama2.c .bin or a .gguf file", path, ext)
	}
	if err != nil {
		return nil, err
	}
	if err := ck.check(); err != nil {
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	return ck, nil
}

func loadHFCheckpoint(dir string, opts LoadOptions) (*Checkpoint, error) {
	w, err := LoadHF(dir)
	if err != nil {
		return nil, err
	}
	ck := &Checkpoint{Weights: w, Format: "hf", Path: dir}
	tokPath := opts.TokenizerPath
	if tokPath == "" {
		if tokPath, err = findHFTokenizer(dir); err != nil {
			if opts.TokenizerOptional && errors.Is(err, ErrNoTokenizer) {
				return ck, nil
			}
			return nil, err
		}
	}
	if strings.EqualFold(filepath.Ext(tokPath), ".bin") {
		if ck.Tokenizer, err = tokenizer.LoadLlama2C(tokPath, w.Config.VocabSize); err != nil {
			return nil, fmt.Errorf("model: %s: tokenizer: %w", dir, err)
		}
		return ck, nil
	}
	if ck.hfTokenizer, err = readHFTokenizer(tokPath); err != nil {
		return nil, err
	}
	ck.Tokenizer = ck.hfTokenizer.tok
	return ck, nil
}

func loadLlama2CCheckpoint(path string, opts LoadOptions) (*Checkpoint, error) {
	if opts.TokenizerPath == "" && !opts.TokenizerOptional {
		return nil, fmt.Errorf("model: %s: a llama2.c checkpoint holds no tokenizer (%w): set LoadOptions.TokenizerPath to its llama2.c tokenizer file (tokenizer.bin, tok512.bin, ...)", path, ErrNoTokenizer)
	}
	w, err := LoadLlama2C(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if opts.TokenizerPath == "" {
		return &Checkpoint{Weights: w, Format: "llama2c", Path: path}, nil
	}
	tok, err := tokenizer.LoadLlama2C(opts.TokenizerPath, w.Config.VocabSize)
	if err != nil {
		return nil, fmt.Errorf("model: %s: tokenizer: %w", path, err)
	}
	return &Checkpoint{Weights: w, Tokenizer: tok, Format: "llama2c", Path: path}, nil
}

func loadGGUFCheckpoint(path string, opts LoadOptions) (*Checkpoint, error) {
	if opts.TokenizerPath != "" {
		return nil, fmt.Errorf("model: %s: a GGUF file carries its own tokenizer; LoadOptions.TokenizerPath must be empty", path)
	}
	w, tok, err := LoadGGUF(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return &Checkpoint{Weights: w, Tokenizer: tok, Format: "gguf", Path: path}, nil
}

func (ck *Checkpoint) check() error {
	if err := ck.Weights.Validate(); err != nil {
		return err
	}
	if err := ck.Weights.CheckFinite(); err != nil {
		return err
	}
	if ck.Tokenizer == nil {
		return nil
	}
	if n, v := ck.Tokenizer.VocabSize(), ck.Weights.Config.VocabSize; n > v {
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
	}
	if err := checkVector("model.embed_tokens", w.Embedding, c.VocabSize, c.Dim); err != nil {
		return err
	}
	if err := checkVector("model.norm", w.Norm, c.Dim); err != nil {
		return err
	}
	if err := checkWeightLinear(w.Output, "lm_head", c.VocabSize, c.Dim); err != nil {
		return err
	}
	aliases := w.Output.Dense != nil && len(w.Embedding) > 0 && &w.Output.Dense[0] == &w.Embedding[0]
	if c.TiedOutput != aliases {
		return fmt.Errorf("model: lm_head: config says tied %t, but the head aliasing the embedding is %t", c.TiedOutput, aliases)
	}
	q, kv := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	for l := range w.Layers {
		layer := &w.Layers[l]
		prefix := fmt.Sprintf("model.layers.%d.", l)
		if err := checkVector(prefix+"input_layernorm", layer.AttnNorm, c.Dim); err != nil {
			return err
		}
		if err := checkVector(prefix+"post_attention_layernorm", layer.MLPNorm, c.Dim); err != nil {
			return err
		}
		for _, s := range []struct {
			lin     *Linear
			module  string
			out, in int
		}{
			{layer.Q, "self_attn.q_proj", q, c.Dim}, {layer.K, "self_attn.k_proj", kv, c.Dim},
			{layer.V, "self_attn.v_proj", kv, c.Dim}, {layer.O, "self_attn.o_proj", c.Dim, q},
			{layer.Gate, "mlp.gate_proj", c.HiddenDim, c.Dim}, {layer.Up, "mlp.up_proj", c.HiddenDim, c.Dim},
			{layer.Down, "mlp.down_proj", c.Dim, c.HiddenDim},
		} {
			if err := checkWeightLinear(s.lin, prefix+s.module, s.out, s.in); err != nil {
				return err
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

func checkWeightLinear(lin *Linear, role string, out, in int) error {
	if lin == nil {
		return fmt.Errorf("model: %s is missing", role)
	}
	if lin.Name != role {
		return fmt.Errorf("model: %s: linear is named %q", role, lin.Name)
	}
	if lin.Out != out || lin.In != in {
		return fmt.Errorf("model: %s: shape [%d %d], want [%d %d]", role, lin.Out, lin.In, out, in)
	}
	switch {
	case lin.Dense != nil && lin.Quantized != nil:
		return fmt.Errorf("model: %s: holds both dense and quantized data", role)
	case lin.Quantized != nil:
		if r, c := lin.Quantized.Dims(); r != out || c != in {
			return fmt.Errorf("model: %s: quantized matrix is [%d %d], want [%d %d]", role, r, c, out, in)
		}
	case len(lin.Dense) != out*in:
		return fmt.Errorf("model: %s: %d dense values, want %d×%d", role, len(lin.Dense), out, in)
	}
	return nil
}
