package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/internal/half"

	"github.com/golora/golora/internal/safetensors"
)

// hfTestConfig is a tiny LLaMA with grouped-query attention (4 heads sharing
// 2 KV heads) and an untied output head.
func hfTestConfig() Config {
	return Config{
		Dim: 16, HiddenDim: 24, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4,
		VocabSize: 32, MaxSeqLen: 64, NormEps: 1e-5, RopeTheta: 500000,
	}
}

// hfRandomWeights returns RandomWeights(cfg, seed) with every value passed
// through round, if not nil, so that weights stored in a narrower type read
// back equal.
func hfRandomWeights(cfg Config, seed uint64, round func(float32) float32) *Weights {
	w := RandomWeights(cfg, seed)
	if round == nil {
		return w
	}
	vecs := [][]float32{w.Embedding, w.Norm}
	for l := range w.Layers {
		layer := &w.Layers[l]
		vecs = append(vecs, layer.AttnNorm, layer.MLPNorm, layer.QNorm, layer.KNorm)
		for _, nl := range layer.Linears() {
			vecs = append(vecs, (*nl.Linear).Dense, (*nl.Linear).Bias)
		}
	}
	if !cfg.TiedOutput {
		vecs = append(vecs, w.Output.Dense)
	}
	for _, v := range vecs {
		for i := range v {
			v[i] = round(v[i])
		}
	}
	return w
}

func hfRoundBF16(x float32) float32 { return half.BF16ToFloat32(half.Float32ToBF16(x)) }
func hfRoundF16(x float32) float32  { return half.F16ToFloat32(half.Float32ToF16(x)) }

// hfAssertSameWeights compares every field of got and want, naming the first
// difference.
func hfAssertSameWeights(t *testing.T, got, want *Weights) {
	t.Helper()
	if got.Config != want.Config {
		t.Fatalf("config = %+v, want %+v", got.Config, want.Config)
	}
	vec := func(name string, g, w []float32) {
		t.Helper()
		if !slices.Equal(g, w) {
			t.Fatalf("%s differs (%d vs %d values)", name, len(g), len(w))
		}
	}
	lin := func(g, w *Linear) {
		t.Helper()
		if g.Name != w.Name || g.Out != w.Out || g.In != w.In || g.Quantized != nil {
			t.Fatalf("linear %q [%d, %d], want %q [%d, %d]", g.Name, g.Out, g.In, w.Name, w.Out, w.In)
		}
		vec(g.Name, g.Dense, w.Dense)
	}
	vec("embedding", got.Embedding, want.Embedding)
	vec("norm", got.Norm, want.Norm)
	if len(got.Layers) != len(want.Layers) {
		t.Fatalf("%d layers, want %d", len(got.Layers), len(want.Layers))
	}
	for l := range got.Layers {
		g, w := &got.Layers[l], &want.Layers[l]
		vec(fmt.Sprintf("layer %d attn norm", l), g.AttnNorm, w.AttnNorm)
		vec(fmt.Sprintf("layer %d mlp norm", l), g.MLPNorm, w.MLPNorm)
		lin(g.Q, w.Q)
		lin(g.K, w.K)
		lin(g.V, w.V)
		lin(g.O, w.O)
		lin(g.Gate, w.Gate)
		lin(g.Up, w.Up)
		lin(g.Down, w.Down)
	}
	lin(got.Output, want.Output)
}

func TestWriteLoadHFBF16Untied(t *testing.T) {
	cfg := hfTestConfig()
	want := hfRandomWeights(cfg, 1, hfRoundBF16)
	dir := t.TempDir()
	if err := WriteHF(dir, want, safetensors.BF16); err != nil {
		t.Fatal(err)
	}
	got, err := loadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	hfAssertSameWeights(t, got, want)

	f, err := safetensors.Open(filepath.Join(dir, hfWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// 1 embedding + 2 layers × 9 + final norm + lm_head.
	if f.Len() != 21 {
		t.Errorf("model.safetensors holds %d tensors, want 21", f.Len())
	}
	k, _ := f.Tensor("model.layers.1.self_attn.k_proj.weight")
	if k.DType != safetensors.BF16 || !slices.Equal(k.Shape, []int{8, 16}) {
		t.Errorf("k_proj is %s %v, want BF16 [8 16] (2 KV heads × head dim 4)", k.DType, k.Shape)
	}
	if md := f.Metadata(); md["format"] != "pt" {
		t.Errorf("metadata = %v, want format pt (transformers requires it)", md)
	}
	var raw map[string]any
	data, err := os.ReadFile(filepath.Join(dir, hfConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["torch_dtype"] != "bfloat16" || raw["num_key_value_heads"] != 2.0 || raw["tie_word_embeddings"] != false {
		t.Errorf("config.json = %s", data)
	}
}

func TestWriteLoadHFTiedF16(t *testing.T) {
	cfg := hfTestConfig()
	cfg.TiedOutput = true
	want := hfRandomWeights(cfg, 2, hfRoundF16)
	dir := t.TempDir()
	if err := WriteHF(dir, want, safetensors.F16); err != nil {
		t.Fatal(err)
	}
	got, err := loadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	hfAssertSameWeights(t, got, want)
	if &got.Output.Dense[0] != &got.Embedding[0] {
		t.Error("tied output head does not alias the embedding")
	}
	f, err := safetensors.Open(filepath.Join(dir, hfWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.Tensor("lm_head.weight"); ok {
		t.Error("lm_head.weight written for a tied model")
	}
}

// A head_dim that is not hidden_size / heads (as in some Gemma-style
// configs) must be read from config.json, not recomputed.
func TestWriteLoadHFExplicitHeadDim(t *testing.T) {
	cfg := hfTestConfig()
	cfg.Heads, cfg.KVHeads, cfg.HeadDim = 2, 1, 6
	want := hfRandomWeights(cfg, 3, nil)
	dir := t.TempDir()
	if err := WriteHF(dir, want, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	got, err := loadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	hfAssertSameWeights(t, got, want)
	if got.Layers[0].Q.Out != 12 || got.Layers[0].O.In != 12 {
		t.Errorf("q_proj out %d, o_proj in %d; want 12 (2 heads × 6)", got.Layers[0].Q.Out, got.Layers[0].O.In)
	}
}

// hfTensors reads every tensor of a safetensors file into memory.
func hfTensors(t *testing.T, path string) []safetensors.Tensor {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	var out []safetensors.Tensor
	for _, name := range f.Names() {
		tensor, _ := f.Tensor(name)
		out = append(out, tensor)
	}
	return out
}

// hfShard rewrites the single-file checkpoint in dir as two shards and an
// index, the way transformers' save_pretrained does for large models, and
// returns the weight map.
func hfShard(t *testing.T, dir string) map[string]string {
	t.Helper()
	single := filepath.Join(dir, hfWeightsFile)
	tensors := hfTensors(t, single)
	half := len(tensors) / 2
	names := []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
	weightMap := map[string]string{}
	for i, part := range [][]safetensors.Tensor{tensors[:half], tensors[half:]} {
		if err := safetensors.WriteFile(filepath.Join(dir, names[i]), part, map[string]string{"format": "pt"}); err != nil {
			t.Fatal(err)
		}
		for _, tensor := range part {
			weightMap[tensor.Name] = names[i]
		}
	}
	hfWriteIndex(t, dir, weightMap)
	if err := os.Remove(single); err != nil {
		t.Fatal(err)
	}
	return weightMap
}

func hfWriteIndex(t *testing.T, dir string, weightMap map[string]string) {
	t.Helper()
	index := map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": weightMap}
	data, err := json.Marshal(index)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, hfIndexFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadHFSharded(t *testing.T) {
	cfg := hfTestConfig()
	want := hfRandomWeights(cfg, 4, nil)
	dir := t.TempDir()
	if err := WriteHF(dir, want, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	weightMap := hfShard(t, dir)
	if weightMap["model.embed_tokens.weight"] == weightMap["lm_head.weight"] {
		t.Fatal("test setup: embedding and lm_head ended up in the same shard")
	}
	got, err := loadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	hfAssertSameWeights(t, got, want)
}

// Checkpoints from transformers mix in keys loadHF does not use (e.g. the
// rotary_emb.inv_freq buffers of older versions); they must be ignored.
func TestLoadHFIgnoresExtraTensors(t *testing.T) {
	cfg := hfTestConfig()
	want := hfRandomWeights(cfg, 5, nil)
	dir := t.TempDir()
	if err := WriteHF(dir, want, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, hfWeightsFile)
	tensors := append(hfTensors(t, path), safetensors.Tensor{
		Name: "model.layers.0.self_attn.rotary_emb.inv_freq", DType: safetensors.F32, Shape: []int{2},
		Data: safetensors.Float32Bytes([]float32{1, 0.5}),
	})
	if err := safetensors.WriteFile(path, tensors, nil); err != nil {
		t.Fatal(err)
	}
	got, err := loadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	hfAssertSameWeights(t, got, want)
}

// readJSONMap reads the JSON object in the file at path.
func readJSONMap(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// hfEditConfig rewrites config.json in dir through edit.
func hfEditConfig(t *testing.T, dir string, edit func(m map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, hfConfigFile)
	m := readJSONMap(t, path)
	edit(m)
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// hfEditTensors rewrites model.safetensors in dir through edit.
func hfEditTensors(t *testing.T, dir string, edit func([]safetensors.Tensor) []safetensors.Tensor) {
	t.Helper()
	path := filepath.Join(dir, hfWeightsFile)
	if err := safetensors.WriteFile(path, edit(hfTensors(t, path)), nil); err != nil {
		t.Fatal(err)
	}
}

// hfReplace returns tensors with the one named name replaced by r.
func hfReplace(tensors []safetensors.Tensor, name string, r safetensors.Tensor) []safetensors.Tensor {
	for i := range tensors {
		if tensors[i].Name == name {
			tensors[i] = r
		}
	}
	return tensors
}

func TestLoadHFErrors(t *testing.T) {
	const kProj = "model.layers.0.self_attn.k_proj.weight"
	tests := []struct {
		name  string
		edit  func(t *testing.T, dir string)
		wants []string // substrings of the error; "$DIR" stands for the checkpoint directory
	}{
		{"no config", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, hfConfigFile))
		}, []string{"$DIR/config.json", "no such file"}},
		{"config not JSON", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, hfConfigFile), []byte("{hidden_size: 16"), 0o644)
		}, []string{"$DIR/config.json", "invalid character"}},
		{"other architecture", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["architectures"] = []string{"GemmaForCausalLM"} })
		}, []string{"$DIR/config.json", `architecture "GemmaForCausalLM" is not supported: it needs Gemma's GeLU-tanh MLP`}},
		{"architecture and model_type disagree", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["architectures"] = []string{"Qwen2ForCausalLM"} })
		}, []string{"$DIR/config.json", `architectures ["Qwen2ForCausalLM"] and model_type "llama" disagree`}},
		{"other model_type", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { delete(m, "architectures"); m["model_type"] = "gpt2" })
		}, []string{`model_type "gpt2" is not supported`}},
		{"no architecture at all", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { delete(m, "architectures"); delete(m, "model_type") })
		}, []string{"neither architectures nor model_type"}},
		{"missing hidden_size", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { delete(m, "hidden_size") })
		}, []string{"hidden_size is missing"}},
		{"zero layers", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["num_hidden_layers"] = 0 })
		}, []string{"num_hidden_layers 0 is out of range"}},
		{"heads not a multiple of KV heads", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["num_key_value_heads"] = 3 })
		}, []string{"num_attention_heads 4 is not a multiple of num_key_value_heads 3"}},
		{"odd head_dim", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["head_dim"] = 3 })
		}, []string{"head_dim 3 must be positive and even"}},
		{"rope_scaling", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["rope_scaling"] = map[string]any{"rope_type": "yarn", "factor": 8} })
		}, []string{"$DIR/config.json", `rope_scaling: rope scaling type "yarn" is not supported`}},
		{"rope_parameters of an unknown type", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["rope_parameters"] = map[string]any{"rope_type": "dynamic", "factor": 2} })
		}, []string{"$DIR/config.json", `rope_parameters: rope scaling type "dynamic" is not supported`}},
		{"llama3 rope_scaling missing keys", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8} })
		}, []string{"$DIR/config.json", `rope_scaling: rope type "llama3" needs low_freq_factor, high_freq_factor, original_max_position_embeddings`}},
		{"longrope factors of the wrong length", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) {
				m["rope_scaling"] = map[string]any{"type": "longrope", "short_factor": []float64{1}, "long_factor": []float64{1, 2}}
			})
		}, []string{"$DIR/config.json", `rope_scaling: rope type "longrope": short_factor has 1 values, want 2`}},
		{"qwen2 sliding window on", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) {
				m["architectures"] = []string{"Qwen2ForCausalLM"}
				m["model_type"] = "qwen2"
				m["use_sliding_window"] = true
			})
		}, []string{"$DIR/config.json", "use_sliding_window true is not supported"}},
		{"qwen2 without biases", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["architectures"] = []string{"Qwen2ForCausalLM"}; m["model_type"] = "qwen2" })
		}, []string{"$DIR/model.safetensors", "tensor model.layers.0.self_attn.q_proj.bias is missing"}},
		{"qwen3 without q_norm", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["architectures"] = []string{"Qwen3ForCausalLM"}; m["model_type"] = "qwen3" })
		}, []string{"$DIR/model.safetensors", "tensor model.layers.0.self_attn.q_norm.weight is missing"}},
		{"phi3 without fused qkv_proj", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["architectures"] = []string{"Phi3ForCausalLM"}; m["model_type"] = "phi3" })
		}, []string{"$DIR/model.safetensors", "tensor model.layers.0.self_attn.qkv_proj.weight is missing"}},
		{"partial rotary outside phi3", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["partial_rotary_factor"] = 0.5 })
		}, []string{"$DIR/config.json", `partial_rotary_factor is not supported for model_type "llama"`}},
		{"gelu", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["hidden_act"] = "gelu" })
		}, []string{`hidden_act "gelu" is not supported`}},
		{"attention bias", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["attention_bias"] = true })
		}, []string{"attention_bias"}},
		{"no weights", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, hfWeightsFile))
		}, []string{"holds neither model.safetensors nor model.safetensors.index.json"}},
		{"corrupt weights", func(t *testing.T, dir string) {
			path := filepath.Join(dir, hfWeightsFile)
			data, _ := os.ReadFile(path)
			os.WriteFile(path, data[:len(data)-1], 0o644)
		}, []string{"$DIR/model.safetensors", "safetensors:"}},
		{"missing tensor", func(t *testing.T, dir string) {
			hfEditTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				return slices.DeleteFunc(ts, func(x safetensors.Tensor) bool { return x.Name == "model.layers.1.mlp.up_proj.weight" })
			})
		}, []string{"$DIR/model.safetensors", "tensor model.layers.1.mlp.up_proj.weight is missing"}},
		{"untied without lm_head", func(t *testing.T, dir string) {
			hfEditTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				return slices.DeleteFunc(ts, func(x safetensors.Tensor) bool { return x.Name == "lm_head.weight" })
			})
		}, []string{"tensor lm_head.weight is missing"}},
		{"more layers than the files hold", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { m["num_hidden_layers"] = 1 << 24 })
		}, []string{"tensor model.layers.2.input_layernorm.weight is missing"}},
		{"wrong shape", func(t *testing.T, dir string) {
			hfEditTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				r, _ := safetensors.FromFloat32(kProj, safetensors.F32, []int{16, 16}, make([]float32, 256))
				return hfReplace(ts, kProj, r)
			})
		}, []string{"$DIR/model.safetensors", "tensor " + kProj + " has shape [16 16], want [8 16]"}},
		{"integer dtype", func(t *testing.T, dir string) {
			hfEditTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				return hfReplace(ts, "model.norm.weight", safetensors.Tensor{
					Name: "model.norm.weight", DType: safetensors.I32, Shape: []int{16}, Data: make([]byte, 64)})
			})
		}, []string{"tensor model.norm.weight has dtype I32"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteHF(dir, hfRandomWeights(hfTestConfig(), 6, nil), safetensors.F32); err != nil {
				t.Fatal(err)
			}
			tt.edit(t, dir)
			w, err := loadHF(dir)
			if err == nil {
				t.Fatalf("loadHF succeeded (%+v)", w.Config)
			}
			for _, want := range tt.wants {
				want = strings.ReplaceAll(want, "$DIR", dir)
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestLoadHFShardErrors(t *testing.T) {
	const shard1, shard2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	tests := []struct {
		name  string
		edit  func(t *testing.T, dir string, weightMap map[string]string)
		wants []string
	}{
		{"missing shard", func(t *testing.T, dir string, weightMap map[string]string) {
			os.Remove(filepath.Join(dir, shard2))
		}, []string{"$DIR/" + shard2, "no such file"}},
		{"shard outside the directory", func(t *testing.T, dir string, weightMap map[string]string) {
			weightMap["model.norm.weight"] = "../" + shard1
			hfWriteIndex(t, dir, weightMap)
		}, []string{`tensor "model.norm.weight": shard "../` + shard1 + `" is not a file name`}},
		{"tensor not in weight_map", func(t *testing.T, dir string, weightMap map[string]string) {
			delete(weightMap, "model.norm.weight")
			hfWriteIndex(t, dir, weightMap)
		}, []string{"$DIR/model.safetensors.index.json", "tensor model.norm.weight is missing from weight_map"}},
		{"weight_map names the wrong shard", func(t *testing.T, dir string, weightMap map[string]string) {
			weightMap["lm_head.weight"] = shard1
			hfWriteIndex(t, dir, weightMap)
		}, []string{"$DIR/" + shard1, "tensor lm_head.weight is missing"}},
		{"empty weight_map", func(t *testing.T, dir string, weightMap map[string]string) {
			hfWriteIndex(t, dir, nil)
		}, []string{"weight_map is missing or empty"}},
		{"index not JSON", func(t *testing.T, dir string, weightMap map[string]string) {
			os.WriteFile(filepath.Join(dir, hfIndexFile), []byte("[1,"), 0o644)
		}, []string{"$DIR/model.safetensors.index.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteHF(dir, hfRandomWeights(hfTestConfig(), 7, nil), safetensors.F32); err != nil {
				t.Fatal(err)
			}
			weightMap := hfShard(t, dir)
			if weightMap["lm_head.weight"] != shard2 || weightMap["model.norm.weight"] != shard2 {
				t.Fatalf("test setup: unexpected weight map %v", weightMap)
			}
			tt.edit(t, dir, weightMap)
			_, err := loadHF(dir)
			if err == nil {
				t.Fatal("loadHF succeeded")
			}
			for _, want := range tt.wants {
				want = strings.ReplaceAll(want, "$DIR", dir)
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

// hfFakeQuantized stands in for a quantized weight: WriteHF must refuse it
// whatever the format.
type hfFakeQuantized struct{ rows, cols int }

func (m hfFakeQuantized) Dims() (int, int)                             { return m.rows, m.cols }
func (m hfFakeQuantized) DequantizeRows(dst []float32, s, e int) error { return nil }
func (m hfFakeQuantized) MulT(y, x []float32, n int) error             { return nil }
func (m hfFakeQuantized) StorageBytes() int64                          { return 0 }
func (m hfFakeQuantized) BitsPerParam() float64                        { return 4 }
func (m hfFakeQuantized) Format() string                               { return "fake4" }

func TestWriteHFErrors(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(w *Weights) *Weights
		dtype safetensors.DType
		want  string
	}{
		{"quantized linear", func(w *Weights) *Weights {
			v := w.Layers[1].V
			v.Dense, v.Quantized = nil, hfFakeQuantized{v.Out, v.In}
			return w
		}, safetensors.BF16, "model.layers.1.self_attn.v_proj.weight: fake4-quantized weights cannot be written: only NF4"},
		{"integer dtype", func(w *Weights) *Weights { return w }, safetensors.I8, `dtype "I8" is not F32, F16 or BF16`},
		{"nil weights", func(w *Weights) *Weights { return nil }, safetensors.F32, "weights are nil"},
		{"short norm", func(w *Weights) *Weights {
			w.Layers[0].MLPNorm = w.Layers[0].MLPNorm[:15]
			return w
		}, safetensors.F32, "model.layers.0.post_attention_layernorm.weight: 15 values, want [16]"},
		{"linear shape", func(w *Weights) *Weights {
			w.Layers[0].Up.Out = 23
			return w
		}, safetensors.F32, "model.layers.0.mlp.up_proj.weight: linear layer is [23, 16], want [24 16]"},
		{"missing linear", func(w *Weights) *Weights {
			w.Layers[1].O = nil
			return w
		}, safetensors.F32, "model.layers.1.self_attn.o_proj.weight: linear layer is nil"},
		{"layer count", func(w *Weights) *Weights {
			w.Layers = w.Layers[:1]
			return w
		}, safetensors.F32, "config says 2 layers, weights hold 1"},
		{"bad config", func(w *Weights) *Weights {
			w.Config.KVHeads = 3
			return w
		}, safetensors.F32, "not a multiple of num_key_value_heads 3"},
		{"tied but different head", func(w *Weights) *Weights {
			w.Config.TiedOutput = true
			return w
		}, safetensors.F32, "output head differs from the embedding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w := tt.edit(hfRandomWeights(hfTestConfig(), 8, nil))
			err := WriteHF(dir, w, tt.dtype)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("failed WriteHF left %d files behind", len(entries))
			}
		})
	}
}

// A tied model whose Output is a separate copy of the embedding (not an
// alias) is still writable.
func TestWriteHFTiedCopy(t *testing.T) {
	cfg := hfTestConfig()
	cfg.TiedOutput = true
	w := hfRandomWeights(cfg, 9, nil)
	w.Output.Dense = slices.Clone(w.Embedding)
	if err := WriteHF(t.TempDir(), w, safetensors.F32); err != nil {
		t.Fatal(err)
	}
}

// The config.json of a real model, TinyLlama-1.1B-Chat-v1.0. The expected
// values are the ones written in that file (head_dim, which it omits, is
// hidden_size / num_attention_heads = 2048 / 32).
func TestReadHFConfigTinyLlama(t *testing.T) {
	cfg, _, _, err := readHFConfig("testdata/hf/tinyllama-config.json")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Dim: 2048, HiddenDim: 5632, Layers: 22, Heads: 32, KVHeads: 4, HeadDim: 64,
		VocabSize: 32000, MaxSeqLen: 2048, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: false,
	}
	if cfg != want {
		t.Errorf("config = %+v, want %+v", cfg, want)
	}
}

// Keys a config.json may omit take the defaults of transformers' LlamaConfig.
func TestLoadHFConfigDefaults(t *testing.T) {
	cfg := hfTestConfig()
	cfg.KVHeads = cfg.Heads
	cfg.NormEps, cfg.RopeTheta, cfg.MaxSeqLen = 1e-6, 10000, 2048
	want := hfRandomWeights(cfg, 10, nil)
	dir := t.TempDir()
	if err := WriteHF(dir, want, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	hfEditConfig(t, dir, func(m map[string]any) {
		for _, k := range []string{"num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta",
			"max_position_embeddings", "tie_word_embeddings", "hidden_act", "architectures"} {
			delete(m, k)
		}
		m["rope_scaling"] = nil
	})
	got, err := loadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	hfAssertSameWeights(t, got, want)
}
