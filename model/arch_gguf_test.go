package model_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
)

// archGGUF converts the Hugging Face checkpoint testdata/arch/<name> to a
// GGUF file as llama.cpp's convert_hf_to_gguf.py lays it out: metadata under
// the architecture's prefix, ggml's tensor names, q and k rows permuted to
// the interleaved RoPE layout for LLaMA-layout models (not for Qwen), Llama
// 3's rope scaling as the rope_freqs tensor (values from make_reference.py,
// the converter's formula), linear scaling as rope.scaling.* keys.
func archGGUF(t *testing.T, name, arch string) string {
	return archGGUFWithout(t, name, arch, "", false)
}

// archGGUFWithout is archGGUF leaving out the tensor named skip, with a
// byte-level BPE (gpt2) tokenizer when bpe is set.
func archGGUFWithout(t *testing.T, name, arch, skip string, bpe bool) string {
	t.Helper()
	dir := filepath.Join("testdata", "arch", name)
	var hc map[string]any
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &hc); err != nil {
		t.Fatal(err)
	}
	var golden struct {
		RopeFreqs []float32 `json:"rope_freqs"`
	}
	if data, err = os.ReadFile(filepath.Join(dir, "golden.json")); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	num := func(key string) int { return int(hc[key].(float64)) }
	heads, kvHeads, dim := num("num_attention_heads"), num("num_key_value_heads"), num("hidden_size")
	headDim := dim / heads
	if v, ok := hc["head_dim"].(float64); ok {
		headDim = int(v)
	}
	var b gguf.Builder
	kv := func(key string, v any) {
		if err := b.AddKV(key, v); err != nil {
			t.Fatal(err)
		}
	}
	kv("general.architecture", arch)
	kv(arch+".embedding_length", uint32(dim))
	kv(arch+".feed_forward_length", uint32(num("intermediate_size")))
	kv(arch+".block_count", uint32(num("num_hidden_layers")))
	kv(arch+".attention.head_count", uint32(heads))
	kv(arch+".attention.head_count_kv", uint32(kvHeads))
	kv(arch+".context_length", uint32(num("max_position_embeddings")))
	kv(arch+".attention.layer_norm_rms_epsilon", float32(hc["rms_norm_eps"].(float64)))
	kv(arch+".rope.freq_base", float32(hc["rope_theta"].(float64)))
	if _, ok := hc["head_dim"]; ok {
		kv(arch+".attention.key_length", uint32(headDim))
		kv(arch+".attention.value_length", uint32(headDim))
	}
	if w, ok := hc["sliding_window"].(float64); ok && (arch == "mistral" || arch == "phi3") {
		kv(arch+".attention.sliding_window", uint32(w))
	}
	rs, _ := hc["rope_scaling"].(map[string]any)
	if rs["type"] == "linear" {
		kv(arch+".rope.scaling.type", "linear")
		kv(arch+".rope.scaling.factor", float32(rs["factor"].(float64)))
	}
	var ropeFactors map[string][]float32
	if arch == "phi3" {
		// convert_hf_to_gguf.py's Phi3MiniModel.
		rot := 1.0
		if p, ok := hc["partial_rotary_factor"].(float64); ok {
			rot = p
		}
		kv(arch+".rope.dimension_count", uint32(int(rot*float64(dim))/heads))
		if rs["type"] == "longrope" {
			orig := num("original_max_position_embeddings")
			kv(arch+".rope.scaling.original_context_length", uint32(orig))
			scale := float64(num("max_position_embeddings")) / float64(orig)
			kv(arch+".rope.scaling.attn_factor", float32(math.Sqrt(1+math.Log(scale)/math.Log(float64(orig)))))
			ropeFactors = map[string][]float32{}
			for _, k := range []string{"long", "short"} {
				for _, v := range rs[k+"_factor"].([]any) {
					ropeFactors[k] = append(ropeFactors[k], float32(v.(float64)))
				}
			}
		}
	}
	vocab := num("vocab_size")
	tokens := make([]string, vocab)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("t%d", i)
	}
	if bpe {
		// Qwen's layout: "Ġ" is the GPT-2 alphabet's space.
		copy(tokens, []string{"a", "b", "ab", "Ġ", "Ġab", "<|endoftext|>"})
		types := make([]int32, vocab)
		for i := range types {
			types[i] = 1
		}
		types[5] = 3
		kv("tokenizer.ggml.model", "gpt2")
		kv("tokenizer.ggml.pre", "qwen2")
		kv("tokenizer.ggml.tokens", tokens)
		kv("tokenizer.ggml.token_type", types)
		kv("tokenizer.ggml.merges", []string{"a b", "Ġ ab"})
		kv("tokenizer.ggml.eos_token_id", uint32(5))
	} else {
		kv("tokenizer.ggml.model", "llama")
		kv("tokenizer.ggml.tokens", tokens)
	}

	f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// permute is convert_hf_to_gguf.py's LlamaModel.permute.
	permute := func(w []float32, n, rows, cols int) []float32 {
		out := make([]float32, len(w))
		half := rows / n / 2
		for h := range n {
			for j := range 2 {
				for i := range half {
					src := (h*2*half + j*half + i) * cols
					dst := (h*2*half + i*2 + j) * cols
					copy(out[dst:dst+cols], w[src:src+cols])
				}
			}
		}
		return out
	}
	names := strings.NewReplacer(
		"model.embed_tokens", "token_embd", "model.norm", "output_norm", "lm_head", "output",
		"model.layers.", "blk.", "input_layernorm", "attn_norm", "post_attention_layernorm", "ffn_norm",
		"self_attn.q_proj", "attn_q", "self_attn.k_proj", "attn_k", "self_attn.v_proj", "attn_v",
		"self_attn.o_proj", "attn_output", "self_attn.q_norm", "attn_q_norm", "self_attn.k_norm", "attn_k_norm",
		"mlp.gate_proj", "ffn_gate", "mlp.up_proj", "ffn_up", "mlp.down_proj", "ffn_down",
		"self_attn.qkv_proj", "attn_qkv", "mlp.gate_up_proj", "ffn_up")
	for _, key := range f.Names() {
		tensor, _ := f.Tensor(key)
		values, err := tensor.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if arch == "llama" || arch == "mistral" {
			switch {
			case strings.HasSuffix(key, "q_proj.weight"):
				values = permute(values, heads, tensor.Shape[0], tensor.Shape[1])
			case strings.HasSuffix(key, "k_proj.weight"):
				values = permute(values, kvHeads, tensor.Shape[0], tensor.Shape[1])
			}
		}
		if names.Replace(key) == skip {
			continue
		}
		if err := b.AddFloat32(names.Replace(key), tensor.Shape, values); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"long", "short"} {
		if v := ropeFactors[k]; v != nil && "rope_factors_"+k+".weight" != skip {
			if err := b.AddFloat32("rope_factors_"+k+".weight", []int{len(v)}, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if golden.RopeFreqs != nil {
		if err := b.AddFloat32("rope_freqs.weight", []int{len(golden.RopeFreqs)}, golden.RopeFreqs); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestGGUFArchitecturesMatchReference: each family converted to GGUF as
// llama.cpp does loads to a model whose generator gives the numpy
// reference's logits within 1e-4.
func TestGGUFArchitecturesMatchReference(t *testing.T) {
	for _, tc := range []struct{ name, arch string }{
		{"llama3", "llama"}, {"llama_linear", "llama"}, {"qwen2", "qwen2"}, {"qwen3", "qwen3"}, {"mistral", "llama"}, {"mistral", "mistral"},
		{"phi3", "phi3"}, {"phi4_longrope", "phi3"},
	} {
		t.Run(tc.name+"/"+tc.arch, func(t *testing.T) {
			base, err := model.Load(context.Background(), archGGUF(t, tc.name, tc.arch), model.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var golden struct {
				Tokens []int       `json:"tokens"`
				Logits [][]float64 `json:"logits"`
			}
			data, err := os.ReadFile(filepath.Join("testdata", "arch", tc.name, "golden.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &golden); err != nil {
				t.Fatal(err)
			}
			g, err := infer.NewGenerator(base.Weights, infer.GeneratorOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			for i, tok := range golden.Tokens {
				logits, err := g.Step(tok)
				if err != nil {
					t.Fatal(err)
				}
				for j, want := range golden.Logits[i] {
					worst = math.Max(worst, math.Abs(float64(logits[j])-want))
				}
			}
			t.Logf("max |logit − reference| %.2g", worst)
			if worst > 1e-4 {
				t.Errorf("GGUF logits differ from the reference by %g", worst)
			}
		})
	}
}

// TestGGUFArchitectureMissingTensors: a Qwen2 GGUF without a bias, a Qwen3
// GGUF without a q norm, a Phi-3 GGUF without a fused projection or with
// short longrope factors but no long ones is refused, naming the file and
// the tensor.
func TestGGUFArchitectureMissingTensors(t *testing.T) {
	for _, tc := range []struct{ name, arch, skip string }{
		{"qwen2", "qwen2", "blk.1.attn_v.bias"},
		{"qwen3", "qwen3", "blk.0.attn_q_norm.weight"},
		{"phi3", "phi3", "blk.1.attn_qkv.weight"},
		{"phi3", "phi3", "blk.0.ffn_up.weight"},
		{"phi4_longrope", "phi3", "rope_factors_long.weight"},
	} {
		path := archGGUFWithout(t, tc.name, tc.arch, tc.skip, false)
		_, err := model.Load(context.Background(), path, model.LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "tensor "+tc.skip+" is missing") {
			t.Errorf("%s without %s: err %v", tc.name, tc.skip, err)
		}
	}
}

// TestGGUFByteLevelBPETokenizer: a Qwen2 GGUF with a gpt2 tokenizer loads
// with it: merges apply, the space marker is decoded, EOS is read, and
// there is no BOS (add_bos_token absent).
func TestGGUFByteLevelBPETokenizer(t *testing.T) {
	base, err := model.Load(context.Background(), archGGUFWithout(t, "qwen2", "qwen2", "", true), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok := base.Tokenizer
	if got := tok.Encode("ab ab"); fmt.Sprint(got) != "[2 4]" {
		t.Errorf("Encode(\"ab ab\") = %v, want [2 4]", got)
	}
	if got := tok.Decode([]int{2, 4}); got != "ab ab" {
		t.Errorf("Decode = %q", got)
	}
	if tok.EOS() != 5 || tok.BOS() != -1 {
		t.Errorf("EOS %d, BOS %d; want 5, -1", tok.EOS(), tok.BOS())
	}
}
