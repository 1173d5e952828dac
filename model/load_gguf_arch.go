package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/golora/golora/internal/gguf"
)

// ggufArch is what the GGUF loader knows of a general.architecture.
type ggufArch struct {
	name     string // general.architecture, the prefix of its metadata keys
	arch     string // Config.Arch
	permuted bool   // attn_q and attn_k rows are in llama.cpp's interleaved (NORM) RoPE layout
	qkvBias  bool   // blk.N.attn_{q,k,v}.bias
	qkNorm   bool   // blk.N.attn_{q,k}_norm.weight
}

// ggufArchs lists the architectures the GGUF loader reads. llama.cpp's
// converter writes Mistral 7B-style models as "llama", usually without their
// sliding window (then none is enforced here, as in llama.cpp; a
// <arch>.attention.sliding_window key is honoured as a limit); "mistral" is
// accepted with the same layout. It permutes q and k of these LLaMA-layout models for its
// interleaved RoPE, but not those of Qwen2 and Qwen3, which llama.cpp runs
// with NEOX (rotate-half) RoPE: their rows are already in Hugging Face's
// layout. (llama.cpp's "mistral3", a newer architecture, is not read.)
var ggufArchs = []ggufArch{
	{name: "llama", permuted: true},
	{name: "mistral", arch: "mistral", permuted: true},
	{name: "qwen2", arch: "qwen2", qkvBias: true},
	{name: "qwen3", arch: "qwen3", qkNorm: true},
}

func ggufArchOf(name string) (ggufArch, error) {
	for _, a := range ggufArchs {
		if a.name == name {
			return a, nil
		}
	}
	if name == "phi3" {
		return ggufArch{}, errors.New(`gguf: general.architecture "phi3" is not supported: its fused attn_qkv and ffn_up tensors are split only for Hugging Face checkpoints; load the safetensors model`)
	}
	return ggufArch{}, fmt.Errorf("gguf: general.architecture %q is not supported%s", name, unsupportedFeature(name))
}

// ggufRopeScaling reads <arch>.rope.scaling.type: none, or linear with
// <arch>.rope.scaling.factor. Llama 3's rescaling comes as the rope_freqs
// tensor instead (ggufRopeFreqs).
func ggufRopeScaling(f *gguf.File, cfg *Config, k func(string) string) error {
	typ, err := f.String(k("rope.scaling.type"))
	if errors.Is(err, gguf.ErrKeyNotFound) || err == nil && typ == "none" {
		return nil
	}
	if err != nil {
		return err
	}
	if typ != "linear" {
		return fmt.Errorf("gguf: %s %q is not supported (only none and linear; Llama 3 scaling is read from rope_freqs.weight)", k("rope.scaling.type"), typ)
	}
	factor, err := ggufFloat(f, k("rope.scaling.factor"))
	if err != nil {
		return fmt.Errorf("gguf: %s linear: %w", k("rope.scaling.type"), err)
	}
	cfg.RopeScaling = RopeScaling{Type: "linear", Factor: factor}
	if err := cfg.RopeScaling.Check(); err != nil {
		return fmt.Errorf("gguf: %s: %w", k("rope.scaling.factor"), err)
	}
	return nil
}

// ggufArchTensors reads the tensors of block l that the architecture adds to
// LLaMA's: q/k/v biases (qwen2) or q/k norms (qwen3).
func ggufArchTensors(layer *Layer, l int, cfg Config, load func(name string, shape ...int) ([]float32, error)) error {
	var err error
	if cfg.QKVBias {
		for _, b := range []struct {
			name string
			lin  *Linear
		}{{"attn_q", layer.Q}, {"attn_k", layer.K}, {"attn_v", layer.V}} {
			if b.lin.Bias, err = load(fmt.Sprintf("blk.%d.%s.bias", l, b.name), b.lin.Out); err != nil {
				return err
			}
		}
	}
	if cfg.QKNorm {
		if layer.QNorm, err = load(fmt.Sprintf("blk.%d.attn_q_norm.weight", l), cfg.HeadDim); err != nil {
			return err
		}
		if layer.KNorm, err = load(fmt.Sprintf("blk.%d.attn_k_norm.weight", l), cfg.HeadDim); err != nil {
			return err
		}
	}
	return nil
}

// ggufRopeFreqs reads rope_freqs.weight, when present: llama.cpp's converter
// stores Llama 3's rope scaling as one divisor per rotary frequency.
func ggufRopeFreqs(f *gguf.File, w *Weights, load func(name string, shape ...int) ([]float32, error)) error {
	if _, ok := f.Tensor(ropeFreqsTensor); !ok {
		return nil
	}
	factors, err := load(ropeFreqsTensor, w.Config.Rotary()/2)
	if err != nil {
		return err
	}
	for i, v := range factors {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("gguf: tensor %s: factor %d is %v, want positive and finite", ropeFreqsTensor, i, v)
		}
	}
	w.RopeFreqFactors = factors
	return nil
}

const ropeFreqsTensor = "rope_freqs.weight"
