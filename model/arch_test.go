package model

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/golora/golora/nf4"
)

var archFamilies = []string{"llama3", "llama_linear", "qwen2", "qwen3", "mistral", "phi3", "phi4_longrope", "mistral_window"}

func archLoad(t *testing.T, name string) *Weights {
	t.Helper()
	b, err := Load(context.Background(), filepath.Join("testdata", "arch", name), LoadOptions{WeightsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return b.Weights
}

// TestArchRopeInvFreqMatchesReference compares Config.RopeInvFreq with the
// frequencies make_reference.py computed (numpy, from transformers'
// rope initializers: default, linear, llama3, longrope's short factors;
// partial for phi3).
func TestArchRopeInvFreqMatchesReference(t *testing.T) {
	for _, name := range archFamilies {
		data, err := os.ReadFile(filepath.Join("testdata", "arch", name, "golden.json"))
		if err != nil {
			t.Fatal(err)
		}
		var g struct {
			InvFreq []float64 `json:"inv_freq"`
		}
		if err := json.Unmarshal(data, &g); err != nil {
			t.Fatal(err)
		}
		got := archLoad(t, name).RopeInvFreq()
		if len(got) != len(g.InvFreq) {
			t.Fatalf("%s: %d frequencies, reference %d", name, len(got), len(g.InvFreq))
		}
		for i, want := range g.InvFreq {
			if math.Abs(got[i]-want) > 1e-12*want {
				t.Errorf("%s: frequency %d = %v, reference %v", name, i, got[i], want)
			}
		}
	}
}

// TestArchConfigs checks what each family's config.json turns into.
func TestArchConfigs(t *testing.T) {
	want := map[string]func(c Config) bool{
		"llama3": func(c Config) bool {
			return c.Arch == "" && c.RopeScaling == RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 64}
		},
		"llama_linear": func(c Config) bool { return c.RopeScaling == RopeScaling{Type: "linear", Factor: 4} },
		"qwen2": func(c Config) bool {
			return c.Arch == "qwen2" && c.QKVBias && !c.QKNorm && c.TiedOutput && c.SlidingWindow == 0
		},
		"qwen3": func(c Config) bool {
			return c.Arch == "qwen3" && c.QKNorm && !c.QKVBias && c.HeadDim == 16 && c.RopeTheta == 1e6
		},
		"mistral":        func(c Config) bool { return c.Arch == "mistral" && c.SlidingWindow == 16 && c.KVHeads == 1 },
		"mistral_window": func(c Config) bool { return c.Arch == "mistral" && c.SlidingWindow == 4 },
		"phi3": func(c Config) bool {
			return c.Arch == "phi3" && c.RotaryDim == 4 && c.HeadDim == 8 && c.NormEps == 1e-5
		},
		"phi4_longrope": func(c Config) bool {
			return c.RotaryDim == 12 && c.TiedOutput && c.RopeScaling.Type == "longrope" && c.RopeScaling.OriginalMaxPos == 32 &&
				c.RopeScaling.Factor == 4 && math.Abs(c.RopeScaling.AttentionFactor-math.Sqrt(1+math.Log(4)/math.Log(32))) < 1e-15
		},
	}
	for _, name := range archFamilies {
		if c := archLoad(t, name).Config; !want[name](c) {
			t.Errorf("%s: config %+v", name, c)
		}
	}
}

// TestArchRopeParameters: transformers 5 writes rope settings (theta
// included) under rope_parameters; they read as the legacy form does.
func TestArchRopeParameters(t *testing.T) {
	legacy := `{"model_type": "llama", "hidden_size": 64, "intermediate_size": 48, "num_hidden_layers": 2,
		"num_attention_heads": 4, "vocab_size": 64, "rope_theta": 500000.0,
		"rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}`
	v5 := `{"model_type": "llama", "hidden_size": 64, "intermediate_size": 48, "num_hidden_layers": 2,
		"num_attention_heads": 4, "vocab_size": 64,
		"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}`
	a, _, err := parseHFConfig("legacy/config.json", []byte(legacy))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := parseHFConfig("v5/config.json", []byte(v5))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) || a.RopeTheta != 500000 || a.RopeScaling.Type != "llama3" {
		t.Errorf("rope_scaling form %+v, rope_parameters form %+v", a, b)
	}
	defaultV5 := strings.Replace(v5, `"rope_type": "llama3"`, `"rope_type": "default"`, 1)
	c, _, err := parseHFConfig("v5/config.json", []byte(defaultV5))
	if err != nil || c.RopeScaling != (RopeScaling{}) || c.RopeTheta != 500000 {
		t.Errorf("default rope_parameters: %+v, %v", c, err)
	}
}

// TestArchUnsupportedFamilies: families golora does not run are refused
// with the feature they lack.
func TestArchUnsupportedFamilies(t *testing.T) {
	for _, tc := range []struct{ modelType, want string }{
		{"gemma2", "GeLU-tanh MLP"},
		{"mixtral", "mixture-of-experts"},
		{"qwen3_moe", "mixture-of-experts"},
		{"phi", "parallel attention"},
		{"mamba", "golora implements llama, mistral, qwen2, qwen3, phi3"},
	} {
		_, _, err := parseHFConfig("m/config.json", []byte(`{"model_type": "`+tc.modelType+`", "hidden_size": 8}`))
		if err == nil || !strings.Contains(err.Error(), "m/config.json") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("model_type %s: err %v, want one naming the file and %q", tc.modelType, err, tc.want)
		}
	}
}

// TestArchWriteHFRoundTrip: WriteHF writes each family back (architecture,
// rope settings, biases, q/k norms, fused projections) so that loading the
// written directory gives the same weights.
func TestArchWriteHFRoundTrip(t *testing.T) {
	for _, name := range archFamilies {
		t.Run(name, func(t *testing.T) {
			w := archLoad(t, name)
			dir := t.TempDir()
			if err := WriteHF(dir, w, F32); err != nil {
				t.Fatal(err)
			}
			b, err := Load(context.Background(), dir, LoadOptions{WeightsOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(b.Weights.Config, w.Config) {
				t.Errorf("config %+v, want %+v", b.Weights.Config, w.Config)
			}
			if !reflect.DeepEqual(b.Weights.RopeFreqFactors, w.RopeFreqFactors) || !reflect.DeepEqual(b.Weights.RopeLongFactors, w.RopeLongFactors) {
				t.Errorf("rope factors %v / %v, want %v / %v", b.Weights.RopeFreqFactors, b.Weights.RopeLongFactors, w.RopeFreqFactors, w.RopeLongFactors)
			}
			for i := range w.Layers {
				got, want := b.Weights.Layers[i], w.Layers[i]
				if !reflect.DeepEqual(got.QNorm, want.QNorm) || !reflect.DeepEqual(got.KNorm, want.KNorm) {
					t.Errorf("layer %d: q/k norms differ", i)
				}
				for j, nl := range want.Linears() {
					g := *got.Linears()[j].Linear
					if !reflect.DeepEqual(g.Dense, (*nl.Linear).Dense) || !reflect.DeepEqual(g.Bias, (*nl.Linear).Bias) {
						t.Errorf("layer %d %s differs", i, nl.Module)
					}
				}
			}
		})
	}
}

// TestWriteHFLongRope: a longrope model is written in the form of
// Phi-4-mini's published config.json (the fixture's, made by
// make_reference.py): the original context at the top level and type,
// short and long factors in rope_scaling, with the same values. A factor
// that form cannot give back goes into rope_scaling with its attention
// factor and reads back the same; rope frequency factors without long ones
// (a GGUF's rope_freqs) are still refused.
func TestWriteHFLongRope(t *testing.T) {
	w := archLoad(t, "phi4_longrope")
	dir := t.TempDir()
	if err := WriteHF(dir, w, F32); err != nil {
		t.Fatal(err)
	}
	got, want := readJSONMap(t, filepath.Join(dir, "config.json")), readJSONMap(t, filepath.Join("testdata", "arch", "phi4_longrope", "config.json"))
	for _, key := range []string{"rope_scaling", "original_max_position_embeddings", "partial_rotary_factor", "max_position_embeddings", "rope_theta"} {
		if !reflect.DeepEqual(got[key], want[key]) {
			t.Errorf("%s: wrote %v, the published form has %v", key, got[key], want[key])
		}
	}

	// A factor other than max positions over the original context.
	w.Config.RopeScaling.Factor = 2
	w.Config.RopeScaling.AttentionFactor = 1.25
	dir = t.TempDir()
	if err := WriteHF(dir, w, F32); err != nil {
		t.Fatal(err)
	}
	rs := readJSONMap(t, filepath.Join(dir, "config.json"))["rope_scaling"].(map[string]any)
	if rs["rope_type"] != "longrope" || rs["factor"] != 2.0 || rs["attention_factor"] != 1.25 || rs["original_max_position_embeddings"] != 32.0 {
		t.Errorf("rope_scaling %v", rs)
	}
	b, err := Load(context.Background(), dir, LoadOptions{WeightsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(b.Weights.Config, w.Config) || !reflect.DeepEqual(b.Weights.RopeLongFactors, w.RopeLongFactors) {
		t.Errorf("read back %+v", b.Weights.Config.RopeScaling)
	}

	w.RopeLongFactors = nil
	if err := WriteHF(t.TempDir(), w, F32); err == nil || !strings.Contains(err.Error(), "rope frequency factors") {
		t.Errorf("short factors alone: err %v, want a refusal", err)
	}
}

// TestArchRealConfigs parses config.json files shaped like the published
// ones (their keys and values; long factor lists shortened to the head's
// frequencies) and checks the settings that matter.
func TestArchRealConfigs(t *testing.T) {
	factors := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = "1.0"
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	for _, tc := range []struct {
		name, json string
		check      func(c Config) bool
	}{
		{"SmolLM2-135M", `{"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 0, "eos_token_id": 0,
			"hidden_act": "silu", "hidden_size": 576, "initializer_range": 0.041666666666666664, "intermediate_size": 1536, "is_llama_config": true,
			"max_position_embeddings": 8192, "mlp_bias": false, "model_type": "llama", "num_attention_heads": 9, "num_hidden_layers": 30,
			"num_key_value_heads": 3, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_interleaved": false, "rope_scaling": null,
			"rope_theta": 100000, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.42.3", "use_cache": true, "vocab_size": 49152}`,
			func(c Config) bool {
				return c.Arch == "" && c.HeadDim == 64 && c.TiedOutput && c.RopeScaling == RopeScaling{}
			}},
		{"Llama-3.2-1B", `{"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 128000,
			"eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
			"max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
			"num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
			"rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
			"rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256}`,
			func(c Config) bool {
				return c.RopeScaling == RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 8192} && c.RopeTheta == 500000
			}},
		{"Qwen2.5-0.5B", `{"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151643,
			"hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864, "max_position_embeddings": 32768,
			"max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
			"rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
			"transformers_version": "4.40.1", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936}`,
			func(c Config) bool { return c.Arch == "qwen2" && c.QKVBias && c.SlidingWindow == 0 && c.HeadDim == 64 }},
		{"Qwen3-0.6B", `{"architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 151643,
			"eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
			"max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3", "num_attention_heads": 16, "num_hidden_layers": 28,
			"num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
			"tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false, "vocab_size": 151936}`,
			func(c Config) bool { return c.Arch == "qwen3" && c.QKNorm && c.HeadDim == 128 }},
		{"Mistral-7B-v0.1", `{"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096,
			"initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32,
			"num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
			"tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000}`,
			func(c Config) bool { return c.Arch == "mistral" && c.SlidingWindow == 4096 }},
		{"Mistral-7B-v0.3", `{"architectures": ["MistralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
			"hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
			"num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
			"sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.42.0.dev0", "use_cache": true, "vocab_size": 32768}`,
			func(c Config) bool { return c.Arch == "mistral" && c.SlidingWindow == 0 }},
		{"Phi-3-mini-4k", `{"architectures": ["Phi3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 1, "embd_pdrop": 0.0,
			"eos_token_id": 32000, "hidden_act": "silu", "hidden_size": 3072, "initializer_range": 0.02, "intermediate_size": 8192,
			"max_position_embeddings": 4096, "model_type": "phi3", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
			"original_max_position_embeddings": 4096, "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05, "rope_scaling": null,
			"rope_theta": 10000.0, "sliding_window": 2047, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.40.2",
			"use_cache": true, "vocab_size": 32064}`,
			func(c Config) bool {
				return c.Arch == "phi3" && c.SlidingWindow == 2047 && c.RotaryDim == 0 && c.HeadDim == 96
			}},
		{"Phi-4-mini", `{"architectures": ["Phi3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 199999,
			"embd_pdrop": 0.0, "eos_token_id": 199999, "full_attn_mod": 1, "hidden_act": "silu", "hidden_size": 3072, "initializer_range": 0.02,
			"intermediate_size": 8192, "interpolate_factor": 1, "lm_head_bias": false, "max_position_embeddings": 131072, "mlp_bias": false,
			"model_type": "phi3", "num_attention_heads": 24, "num_hidden_layers": 32, "num_key_value_heads": 8, "original_max_position_embeddings": 4096,
			"pad_token_id": 199999, "partial_rotary_factor": 0.75, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05,
			"rope_scaling": {"long_factor": ` + factors(48) + `, "short_factor": ` + factors(48) + `, "type": "longrope"},
			"rope_theta": 10000.0, "sliding_window": 262144, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.45.0",
			"use_cache": true, "vocab_size": 200064}`,
			func(c Config) bool {
				return c.Arch == "phi3" && c.RotaryDim == 96 && c.HeadDim == 128 && c.RopeScaling.Type == "longrope" &&
					c.RopeScaling.Factor == 32 && c.RopeScaling.OriginalMaxPos == 4096
			}},
	} {
		c, _, err := parseHFConfig(tc.name+"/config.json", []byte(tc.json))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !tc.check(c) {
			t.Errorf("%s: config %+v", tc.name, c)
		}
	}
}

func TestArchExtensions(t *testing.T) {
	want := map[string]string{
		"llama3":         "rope scaling llama3",
		"llama_linear":   "rope scaling linear",
		"qwen2":          "q/k/v biases",
		"qwen3":          "q/k norms",
		"mistral":        "sliding window 16",
		"mistral_window": "sliding window 4",
		"phi3":           "partial rotary embeddings, sliding window 64",
		"phi4_longrope":  "rope scaling longrope, rope frequency factors, partial rotary embeddings",
	}
	for _, name := range archFamilies {
		if got := strings.Join(archLoad(t, name).Extensions(), ", "); got != want[name] {
			t.Errorf("%s: extensions %q, want %q", name, got, want[name])
		}
	}
	if ext := NewWeights(Config{Dim: 8, HeadDim: 4}).Extensions(); ext != nil {
		t.Errorf("a Llama 2 config has extensions %q", ext)
	}
}

// TestArchWriteHFNF4RoundTrip: Qwen2 and Qwen3 bases with NF4 block
// linears are written in bitsandbytes' layout beside their float biases and
// q/k norms, and load back unchanged.
func TestArchWriteHFNF4RoundTrip(t *testing.T) {
	for _, name := range []string{"qwen2", "qwen3"} {
		t.Run(name, func(t *testing.T) {
			w := archLoad(t, name)
			if err := w.Quantize(context.Background(), nf4.Quantizer(nf4.Options{})); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := WriteHF(dir, w, BF16); err != nil {
				t.Fatal(err)
			}
			b, err := Load(context.Background(), dir, LoadOptions{WeightsOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			got := b.Weights
			if got.Config != w.Config {
				t.Errorf("config %+v, want %+v", got.Config, w.Config)
			}
			for i := range w.Layers {
				if !reflect.DeepEqual(got.Layers[i].Q.Quantized, w.Layers[i].Q.Quantized) {
					t.Errorf("layer %d: q_proj's NF4 matrix changed", i)
				}
				// Biases and norms are written in BF16: compare at its precision.
				for _, pair := range [][2][]float32{
					{got.Layers[i].Q.Bias, w.Layers[i].Q.Bias}, {got.Layers[i].V.Bias, w.Layers[i].V.Bias},
					{got.Layers[i].QNorm, w.Layers[i].QNorm}, {got.Layers[i].KNorm, w.Layers[i].KNorm},
				} {
					if len(pair[0]) != len(pair[1]) {
						t.Fatalf("layer %d: %d values, want %d", i, len(pair[0]), len(pair[1]))
					}
					for j := range pair[0] {
						if math.Abs(float64(pair[0][j]-pair[1][j])) > 1e-2*math.Abs(float64(pair[1][j]))+1e-6 {
							t.Fatalf("layer %d value %d: %v, want %v", i, j, pair[0][j], pair[1][j])
						}
					}
				}
			}
		})
	}
}
