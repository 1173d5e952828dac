package model

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/internal/hugemem"
	"github.com/golora/golora/quant/ggml"
)

// ggufArch is what the GGUF loader knows of a general.architecture.
type ggufArch struct {
	name     string // general.architecture, the prefix of its metadata keys
	arch     string // Config.Arch
	permuted bool   // attn_q and attn_k rows are in llama.cpp's interleaved (NORM) RoPE layout
	qkvBias  bool   // blk.N.attn_{q,k,v}.bias
	qkNorm   bool   // blk.N.attn_{q,k}_norm.weight
	fused    bool   // blk.N.attn_qkv holds q, k, v and blk.N.ffn_up gate, up (Phi-3)
}

// ggufArchs lists the architectures the GGUF loader reads. llama.cpp's
// converter writes Mistral 7B-style models as "llama", usually without their
// sliding window (then none is enforced here, as in llama.cpp; a
// <arch>.attention.sliding_window key is honoured as a limit); "mistral" is
// accepted with the same layout. It permutes q and k of these LLaMA-layout models for its
// interleaved RoPE, but not those of Qwen2 and Qwen3, which llama.cpp runs
// with NEOX (rotate-half) RoPE: their rows are already in Hugging Face's
// layout. (llama.cpp's "mistral3", a newer architecture, is not read.)
// Phi-3 ("phi3") is NEOX too, with its fused projections as
// convert_hf_to_gguf.py keeps them: attn_qkv stacks the rows of q, k and v,
// ffn_up those of gate and up.
var ggufArchs = []ggufArch{
	{name: "llama", permuted: true},
	{name: "mistral", arch: "mistral", permuted: true},
	{name: "qwen2", arch: "qwen2", qkvBias: true},
	{name: "qwen3", arch: "qwen3", qkNorm: true},
	{name: "phi3", arch: "phi3", fused: true},
}

func ggufArchOf(name string) (ggufArch, error) {
	for _, a := range ggufArchs {
		if a.name == name {
			return a, nil
		}
	}
	names := make([]string, len(ggufArchs))
	for i, a := range ggufArchs {
		names[i] = a.name
	}
	missing := ""
	for _, m := range missingFeatures {
		if strings.HasPrefix(strings.ToLower(name), m.prefix) {
			missing = ": it needs " + m.feature + ", which golora does not implement"
			break
		}
	}
	return ggufArch{}, fmt.Errorf("gguf: general.architecture %q is not supported%s (golora reads the GGUF architectures %s)", name, missing, strings.Join(names, ", "))
}

// ggufRotaryDim reads <arch>.rope.dimension_count: how many values of each
// head RoPE rotates (Config.RotaryDim when fewer than the head dim, Phi-3's
// partial rotary). Partial rotary is read only for NEOX-layout
// architectures, whose rotated values lead each head as in Hugging Face's
// layout.
func ggufRotaryDim(f *gguf.File, cfg *Config, ga ggufArch, k func(string) string) error {
	n, err := ggufOptionalInt(f, k("rope.dimension_count"))
	switch {
	case err != nil:
		return err
	case n == 0 || n == cfg.HeadDim:
		return nil
	case ga.permuted:
		return fmt.Errorf("gguf: %s %d differs from the head dim %d: partial rotary is not supported for %s's interleaved RoPE layout", k("rope.dimension_count"), n, cfg.HeadDim, ga.name)
	case n > cfg.HeadDim || n%2 != 0:
		return fmt.Errorf("gguf: %s %d: want an even count no larger than the head dim %d", k("rope.dimension_count"), n, cfg.HeadDim)
	}
	cfg.RotaryDim = n
	return nil
}

// GGUF names of Phi-3's longrope frequency divisors (convert_hf_to_gguf.py's
// Phi3MiniModel): short factors up to the original context length, long
// factors beyond it.
const (
	ropeFactorsShortTensor = "rope_factors_short.weight"
	ropeFactorsLongTensor  = "rope_factors_long.weight"
)

// ggufRopeScaling reads <arch>.rope.scaling.type: none, or linear with
// <arch>.rope.scaling.factor. Llama 3's rescaling comes as the rope_freqs
// tensor instead (ggufRopeFreqs). A phi3 file with longrope factor tensors
// is longrope (its factors are read by ggufLongRopeFactors): the original
// context length from rope.scaling.original_context_length, the factor the
// context length over it, the attention factor from rope.scaling.attn_factor
// or, when absent, transformers' default sqrt(1 + ln factor / ln original).
func ggufRopeScaling(f *gguf.File, cfg *Config, ga ggufArch, k func(string) string) error {
	if _, ok := f.Tensor(ropeFactorsShortTensor); ok && ga.fused {
		return ggufLongRope(f, cfg, k)
	}
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

func ggufLongRope(f *gguf.File, cfg *Config, k func(string) string) error {
	orig, err := ggufPositiveInt(f, k("rope.scaling.original_context_length"))
	if err != nil {
		return fmt.Errorf("gguf: longrope (tensor %s): %w", ropeFactorsShortTensor, err)
	}
	factor := float64(cfg.MaxSeqLen) / float64(orig)
	attention := longropeAttention(factor, orig)
	if _, ok := f.Lookup(k("rope.scaling.attn_factor")); ok {
		stored, err := ggufFloat(f, k("rope.scaling.attn_factor"))
		if err != nil {
			return err
		}
		// The converter stores the factor as float32: when that is the
		// default rounded, keep the default's float64 value, so that a
		// model read back from a file WriteGGUF wrote is the same model.
		if float32(stored) != float32(attention) {
			attention = stored
		}
	}
	cfg.RopeScaling = RopeScaling{Type: "longrope", Factor: factor, OriginalMaxPos: orig, AttentionFactor: attention}
	if err := cfg.RopeScaling.Check(); err != nil {
		return fmt.Errorf("gguf: %s: %w", k("rope.scaling.attn_factor"), err)
	}
	return nil
}

// ggufLongRopeFactors plans reading Phi-3's longrope tensors when the
// configuration is longrope: the short factors become
// Weights.RopeFreqFactors; the long ones, which apply only beyond the
// original context length (where golora refuses to go, see
// Config.RopeScaling), Weights.RopeLongFactors.
func ggufLongRopeFactors(p *ggufPlan, w *Weights) error {
	if w.Config.RopeScaling.Type != "longrope" {
		return nil
	}
	half := w.Config.Rotary() / 2
	for _, t := range []struct {
		name string
		dst  *[]float32
	}{{ropeFactorsShortTensor, &w.RopeFreqFactors}, {ropeFactorsLongTensor, &w.RopeLongFactors}} {
		if err := p.loadFactors(t.dst, t.name, half); err != nil {
			return err
		}
	}
	return nil
}

// permutedHeads returns the head count of linear i of Layer.Linears when
// its rows are stored in llama.cpp's interleaved RoPE layout (the query's or
// the key's of a permuted architecture), else 0.
func (ga ggufArch) permutedHeads(i int, cfg Config) int {
	switch {
	case !ga.permuted:
	case i == 0:
		return cfg.Heads
	case i == 1:
		return cfg.KVHeads
	}
	return 0
}

// ggufFusedPart reports whether linear i of Layer.Linears is stored in a
// fused tensor of a fused architecture: q, k, v (attn_qkv) and gate, up
// (ffn_up).
func ggufFusedPart(i int) bool { return i != 3 && i != 6 }

// ggufFusedLinears plans reading block blk's fused tensors attn_qkv (q, k,
// v) and ffn_up (gate, up) and splitting their rows into the linears.
// Block-quantized rows stay in their format (each part keeps its rows'
// blocks) unless so.requantize asks the quantizer to quantize them again.
func ggufFusedLinears(p *ggufPlan, layer *Layer, blk func(string) string, so streamOptions) error {
	for _, fz := range []struct {
		name  string
		parts []*Linear
	}{{"attn_qkv", []*Linear{layer.Q, layer.K, layer.V}}, {"ffn_up", []*Linear{layer.Gate, layer.Up}}} {
		rows, cols := 0, fz.parts[0].In
		for _, lin := range fz.parts {
			rows += lin.Out
		}
		t, err := p.info(blk(fz.name), rows, cols)
		if err != nil {
			return err
		}
		if ggml.Type(t.Type).Supported() && (so.quantizer == nil || !so.requantize) {
			err = p.add(t, func(raw []byte, file tensorFile, _ *streamQuantizer) error {
				rowBytes := len(raw) / rows
				if rowBytes*rows != len(raw) {
					return fmt.Errorf("gguf: tensor %s: %d bytes of %v data for %d rows", t.Name, len(raw), t.Type, rows)
				}
				r0 := 0
				for _, lin := range fz.parts {
					name := fmt.Sprintf("%s[%d:%d]", t.Name, r0, r0+lin.Out)
					m, err := ggufBlocks(name, t, raw[r0*rowBytes:(r0+lin.Out)*rowBytes], file, lin.Out, lin.In, nil)
					if err != nil {
						return err
					}
					lin.Quantized, lin.finite = m, true
					r0 += lin.Out
				}
				return nil
			})
			if err != nil {
				return err
			}
			continue
		}
		// Each part is converted from its own rows of the file, into its
		// linear or straight into the quantizer's buffer: a float32 copy of
		// the whole fused tensor would be rows·cols·4 bytes on top of the
		// parts (Phi-3-mini's gate_up: 2·8192·3072·4 = 201 MB, more than a
		// layer's NF4 weights), against the bound on peak RSS while loading.
		err = p.add(t, func(raw []byte, file tensorFile, sq *streamQuantizer) error {
			r0 := 0
			for _, lin := range fz.parts {
				lo, hi := r0, r0+lin.Out
				r0 = hi
				fill := func(dst []float32) (bool, error) {
					return ggufFloat32Rows(t, raw, file, rows, cols, lo, hi, dst)
				}
				if sq == nil {
					lin.Dense = hugemem.Make[float32](lin.Out * lin.In)
					finite, err := fill(lin.Dense)
					if err != nil {
						return err
					}
					lin.finite = finite
					continue
				}
				where := fmt.Sprintf("tensor %s rows %d..%d", t.Name, lo, hi)
				if err := sq.add(quantizeJob{lin: lin, where: where, fill: fill}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ggufArchTensors plans reading the tensors of block l that the
// architecture adds to LLaMA's: q/k/v biases (qwen2) or q/k norms (qwen3).
func ggufArchTensors(p *ggufPlan, layer *Layer, l int, cfg Config) error {
	if cfg.QKVBias {
		for _, b := range []struct {
			name string
			lin  *Linear
		}{{"attn_q", layer.Q}, {"attn_k", layer.K}, {"attn_v", layer.V}} {
			if err := p.load(&b.lin.Bias, fmt.Sprintf("blk.%d.%s.bias", l, b.name), b.lin.Out); err != nil {
				return err
			}
		}
	}
	if cfg.QKNorm {
		if err := p.load(&layer.QNorm, fmt.Sprintf("blk.%d.attn_q_norm.weight", l), cfg.HeadDim); err != nil {
			return err
		}
		if err := p.load(&layer.KNorm, fmt.Sprintf("blk.%d.attn_k_norm.weight", l), cfg.HeadDim); err != nil {
			return err
		}
	}
	return nil
}

// ggufRopeFreqs plans reading rope_freqs.weight, when present: llama.cpp's
// converter stores Llama 3's rope scaling as one divisor per rotary
// frequency.
func ggufRopeFreqs(p *ggufPlan, w *Weights) error {
	if _, ok := p.f.Tensor(ropeFreqsTensor); !ok {
		return nil
	}
	return p.loadFactors(&w.RopeFreqFactors, ropeFreqsTensor, w.Config.Rotary()/2)
}

// loadFactors plans reading the n rope frequency divisors of tensor name
// into *dst, and checking, once read, that they are positive and finite.
func (p *ggufPlan) loadFactors(dst *[]float32, name string, n int) error {
	if err := p.load(dst, name, n); err != nil {
		return err
	}
	p.checks = append(p.checks, func() error {
		for i, v := range *dst {
			if !(v > 0) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("gguf: tensor %s: factor %d is %v, want positive and finite", name, i, v)
			}
		}
		return nil
	})
	return nil
}

const ropeFreqsTensor = "rope_freqs.weight"
