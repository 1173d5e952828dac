package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// family is what golora knows of one Hugging Face model family: its names
// and the defaults its transformers Config class gives absent keys.
type family struct {
	modelType    string  // model_type
	architecture string  // the architectures entry of a causal LM
	maxSeqLen    int     // max_position_embeddings default
	normEps      float64 // rms_norm_eps default
	headDim      int     // head_dim default; 0: hidden_size / num_attention_heads
	window       int     // sliding_window default when the key is absent
	qkvBias      bool    // q_proj, k_proj and v_proj carry biases
	qkNorm       bool    // q_norm and k_norm over each head
	fused        bool    // qkv_proj and gate_up_proj hold q, k, v and gate, up
}

// families lists the supported families. Defaults are those of
// transformers' LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config and
// Phi3Config.
var families = []family{
	{modelType: "llama", architecture: "LlamaForCausalLM", maxSeqLen: 2048, normEps: 1e-6},
	{modelType: "mistral", architecture: "MistralForCausalLM", maxSeqLen: 4096 * 32, normEps: 1e-6, window: 4096},
	{modelType: "qwen2", architecture: "Qwen2ForCausalLM", maxSeqLen: 32768, normEps: 1e-6, qkvBias: true},
	{modelType: "qwen3", architecture: "Qwen3ForCausalLM", maxSeqLen: 32768, normEps: 1e-6, headDim: 128, qkNorm: true},
	{modelType: "phi3", architecture: "Phi3ForCausalLM", maxSeqLen: 4096, normEps: 1e-5, fused: true},
}

func familyByArchitecture(a string) (family, bool) {
	for _, f := range families {
		if f.architecture == a {
			return f, true
		}
	}
	return family{}, false
}

func familyByModelType(t string) (family, bool) {
	for _, f := range families {
		if f.modelType == t {
			return f, true
		}
	}
	return family{}, false
}

// familyOf returns the family of a Config's Arch ("" is llama).
func familyOf(arch string) (family, error) {
	if arch == "" {
		arch = "llama"
	}
	f, ok := familyByModelType(arch)
	if !ok {
		return family{}, fmt.Errorf("architecture %q is not one golora implements", arch)
	}
	return f, nil
}

// missingFeatures names, for families people ask for that golora does not
// run, what their forward pass needs beyond golora's. Keys are lower-case
// prefixes of model_type or architecture names.
var missingFeatures = []struct{ prefix, feature string }{
	{"gemma", "Gemma's GeLU-tanh MLP, (1 + weight) RMSNorm, scaled embeddings and (Gemma 2/3) logit soft-capping and sliding-window layers"},
	{"mixtral", "a mixture-of-experts MLP"},
	{"qwen2moe", "a mixture-of-experts MLP"},
	{"qwen2_moe", "a mixture-of-experts MLP"},
	{"qwen3moe", "a mixture-of-experts MLP"},
	{"qwen3_moe", "a mixture-of-experts MLP"},
	{"phimoe", "a mixture-of-experts MLP"},
	{"phi3v", "an image encoder"},
	{"qwen2_vl", "an image encoder and multimodal RoPE"},
	{"qwen2vl", "an image encoder and multimodal RoPE"},
	{"phi", "Phi-1/2's LayerNorm, parallel attention and GeLU MLP"},
	{"olmo", "OLMo's non-parametric LayerNorm or QK-norm over whole projections"},
	{"falcon", "Falcon's LayerNorm and parallel attention"},
	{"gpt", "LayerNorm, learned positions and a GeLU MLP"},
	{"deepseek", "multi-head latent attention and mixture-of-experts MLPs"},
	{"cohere", "LayerNorm and logit scaling"},
	{"starcoder2", "LayerNorm, biases everywhere and a GeLU MLP"},
}

// unsupportedFeature returns ": <what is missing>" for a known unsupported
// family, else a list of the supported ones.
func unsupportedFeature(name string) string {
	lower := strings.ToLower(name)
	for _, m := range missingFeatures {
		if strings.HasPrefix(lower, m.prefix) {
			return ": it needs " + m.feature + ", which golora does not implement"
		}
	}
	names := make([]string, len(families))
	for i, f := range families {
		names[i] = f.modelType
	}
	return ": golora implements " + strings.Join(names, ", ")
}

// hfRope is a rope_scaling or rope_parameters object of config.json.
type hfRope struct {
	RopeType       string   `json:"rope_type"`
	Type           string   `json:"type"` // older spelling of rope_type
	Factor         *float64 `json:"factor"`
	LowFreqFactor  *float64 `json:"low_freq_factor"`
	HighFreqFactor *float64 `json:"high_freq_factor"`
	OriginalMaxPos *int     `json:"original_max_position_embeddings"`
	// rope_parameters (transformers 5) also hold these.
	RopeTheta           *float64 `json:"rope_theta"`
	PartialRotaryFactor *float64 `json:"partial_rotary_factor"`
	// longrope (Phi-3, Phi-4-mini).
	ShortFactor     []float64 `json:"short_factor"`
	LongFactor      []float64 `json:"long_factor"`
	AttentionFactor *float64  `json:"attention_factor"`
}

// isNull reports an absent or JSON null value.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// longropeAttention is longrope's default attention factor for a context
// factor times the original orig positions: sqrt(1 + ln factor / ln orig),
// 1 for a factor ≤ 1.
func longropeAttention(factor float64, orig int) float64 {
	if factor > 1 && orig > 1 {
		return math.Sqrt(1 + math.Log(factor)/math.Log(float64(orig)))
	}
	return 1
}

// longropeFactors are longrope's divisors of the rotary frequencies: short
// up to the original context length (Weights.RopeFreqFactors), long beyond
// it (Weights.RopeLongFactors). Both are nil for other rope types.
type longropeFactors struct {
	short, long []float32
}

// rotary reads the RoPE settings: rope_parameters (transformers 5) or else
// rope_scaling, and partial_rotary_factor. cfg.HeadDim must be settled. For
// longrope it returns its factors.
func (hc *hfConfig) rotary(cfg *Config) (longropeFactors, error) {
	var r hfRope
	if err := hc.rope(cfg, &r); err != nil {
		return longropeFactors{}, err
	}
	if cfg.RopeScaling.Type != "longrope" {
		return longropeFactors{}, nil
	}
	key := "rope_parameters"
	if isNull(hc.RopeParameters) {
		key = "rope_scaling"
	}
	factors, err := r.longrope(cfg, hc.OriginalMaxPositionEmbeddings)
	if err != nil {
		return longropeFactors{}, fmt.Errorf("%s: %w", key, err)
	}
	return factors, nil
}

// rope is the part of rotary that fills cfg and, with the rope_scaling
// (or rope_parameters) object, r.
func (hc *hfConfig) rope(cfg *Config, out *hfRope) error {
	key, raw := "rope_parameters", hc.RopeParameters
	if isNull(raw) {
		key, raw = "rope_scaling", hc.RopeScaling
	}
	partial := hc.PartialRotaryFactor
	if !isNull(raw) {
		var r hfRope
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		s, err := r.scaling()
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		cfg.RopeScaling = s
		*out = r
		if r.RopeTheta != nil {
			cfg.RopeTheta = *r.RopeTheta
			if !(cfg.RopeTheta > 0) || math.IsInf(cfg.RopeTheta, 0) {
				return fmt.Errorf("%s: rope_theta %v must be positive and finite", key, cfg.RopeTheta)
			}
		}
		if r.PartialRotaryFactor != nil {
			partial = r.PartialRotaryFactor
		}
	}
	if partial != nil {
		f := *partial
		if !(f > 0 && f <= 1) {
			return fmt.Errorf("partial_rotary_factor %v is not in (0, 1]", f)
		}
		// transformers truncates, as int() does.
		dim := int(float64(cfg.HeadDim) * f)
		if dim <= 0 || dim%2 != 0 {
			return fmt.Errorf("partial_rotary_factor %v of head_dim %d rotates %d values: want a positive even count", f, cfg.HeadDim, dim)
		}
		if dim < cfg.HeadDim {
			cfg.RotaryDim = dim
		}
	}
	return nil
}

// scaling converts r, refusing rope types golora does not implement and
// parameters they need but lack.
func (r hfRope) scaling() (RopeScaling, error) {
	typ := r.RopeType
	if typ == "" {
		typ = r.Type
	}
	switch typ {
	case "", "default":
		return RopeScaling{}, nil
	case "longrope":
		// Completed by longrope, which needs the rest of the config.
		return RopeScaling{Type: typ}, nil
	}
	s := RopeScaling{Type: typ}
	var missing []string
	// take reads a parameter the type needs, noting it when absent.
	take := func(key string, v *float64) float64 {
		if v == nil {
			missing = append(missing, key)
			return 0
		}
		return *v
	}
	if typ == "linear" || typ == "llama3" {
		s.Factor = take("factor", r.Factor)
	}
	if typ == "llama3" {
		s.LowFreqFactor = take("low_freq_factor", r.LowFreqFactor)
		s.HighFreqFactor = take("high_freq_factor", r.HighFreqFactor)
		if r.OriginalMaxPos == nil {
			missing = append(missing, "original_max_position_embeddings")
		} else {
			s.OriginalMaxPos = *r.OriginalMaxPos
		}
	}
	if len(missing) > 0 {
		return RopeScaling{}, fmt.Errorf("rope type %q needs %s", typ, strings.Join(missing, ", "))
	}
	if err := s.Check(); err != nil {
		return RopeScaling{}, err
	}
	return s, nil
}

// slidingWindow reads sliding_window: null or absent-with-no-default is no
// window; qwen2 and qwen3 use theirs only with use_sliding_window, which
// checkArchitecture refuses.
func (hc *hfConfig) slidingWindow(fam family) (int, error) {
	if fam.qkvBias || fam.qkNorm {
		return 0, nil
	}
	raw := bytes.TrimSpace(hc.SlidingWindow)
	if len(raw) == 0 {
		return fam.window, nil
	}
	if bytes.Equal(raw, []byte("null")) {
		return 0, nil
	}
	var w int
	if err := json.Unmarshal(raw, &w); err != nil {
		return 0, fmt.Errorf("sliding_window: %w", err)
	}
	if w <= 0 || w > hfMaxDim {
		return 0, fmt.Errorf("sliding_window %d is out of range [1, %d]", w, hfMaxDim)
	}
	return w, nil
}

// errFusedQuantized refuses bitsandbytes checkpoints of fused projections,
// which would have to be split in their 4-bit form.
var errFusedQuantized = errors.New("bitsandbytes 4-bit fused projections (qkv_proj, gate_up_proj) are not supported; load the float checkpoint and quantize it with golora")

// longrope completes cfg.RopeScaling for a longrope r as transformers'
// _compute_longrope_parameters does: with a top-level
// original_max_position_embeddings (Phi-3's form) the factor is
// max_position_embeddings over it, else original positions are
// max_position_embeddings and the factor r's; the attention factor, unless
// given, is sqrt(1 + ln factor / ln original) (1 for a factor ≤ 1). It
// returns the short and long factors, checked, as float32.
func (r hfRope) longrope(cfg *Config, topOriginal *int) (longropeFactors, error) {
	orig, factor := cfg.MaxSeqLen, 1.0
	if r.Factor != nil {
		factor = *r.Factor
	}
	switch {
	case topOriginal != nil:
		if *topOriginal <= 0 {
			return longropeFactors{}, fmt.Errorf("original_max_position_embeddings %d is not positive", *topOriginal)
		}
		orig = *topOriginal
		factor = float64(cfg.MaxSeqLen) / float64(orig)
	case r.OriginalMaxPos != nil:
		orig = *r.OriginalMaxPos
	}
	attention := longropeAttention(factor, orig)
	if r.AttentionFactor != nil {
		attention = *r.AttentionFactor
	}
	half := cfg.Rotary() / 2
	for _, f := range []struct {
		key string
		v   []float64
	}{{"short_factor", r.ShortFactor}, {"long_factor", r.LongFactor}} {
		if len(f.v) != half {
			return longropeFactors{}, fmt.Errorf("rope type \"longrope\": %s has %d values, want %d (one per rotary frequency)", f.key, len(f.v), half)
		}
		for i, v := range f.v {
			if !(v > 0) || math.IsInf(v, 0) {
				return longropeFactors{}, fmt.Errorf("rope type \"longrope\": %s[%d] is %v, want positive and finite", f.key, i, v)
			}
		}
	}
	cfg.RopeScaling = RopeScaling{Type: "longrope", Factor: factor, OriginalMaxPos: orig, AttentionFactor: attention}
	if err := cfg.RopeScaling.Check(); err != nil {
		return longropeFactors{}, err
	}
	var out longropeFactors
	for _, f := range []struct {
		dst *[]float32
		v   []float64
	}{{&out.short, r.ShortFactor}, {&out.long, r.LongFactor}} {
		*f.dst = make([]float32, half)
		for i, v := range f.v {
			(*f.dst)[i] = float32(v)
		}
	}
	return out, nil
}
