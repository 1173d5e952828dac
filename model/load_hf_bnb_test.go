package model

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
)

// hfNF4Weights returns random weights for cfg with every block linear
// quantized to NF4 with opts.
func hfNF4Weights(t *testing.T, cfg Config, seed uint64, round func(float32) float32, opts nf4.Options) *Weights {
	t.Helper()
	w := hfRandomWeights(cfg, seed, round)
	err := w.Quantize(context.Background(), nf4.Quantizer(opts))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// hfAssertSameNF4 checks that got holds exactly want's matrices and float
// tensors: every array of every NF4 matrix bit for bit.
func hfAssertSameNF4(t *testing.T, got, want *Weights) {
	t.Helper()
	if got.Config != want.Config {
		t.Fatalf("config = %+v, want %+v", got.Config, want.Config)
	}
	bits := func(v []float32) []uint32 {
		out := make([]uint32, len(v))
		for i, x := range v {
			out[i] = math.Float32bits(x)
		}
		return out
	}
	// A 16-bit embedding (EmbeddingMatrix) must widen to the same values.
	gotEmb, err := got.EmbeddingFloat32()
	if err != nil {
		t.Fatal(err)
	}
	wantEmb, err := want.EmbeddingFloat32()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bits(gotEmb), bits(wantEmb)) || !slices.Equal(got.Norm, want.Norm) {
		t.Fatal("embedding or final norm differs")
	}
	wantLins, gotLins := want.Linears(), got.Linears()
	for i, wl := range wantLins {
		gl := gotLins[i]
		if gl.Name != wl.Name || gl.Out != wl.Out || gl.In != wl.In {
			t.Fatalf("linear %q [%d %d], want %q [%d %d]", gl.Name, gl.Out, gl.In, wl.Name, wl.Out, wl.In)
		}
		wm, wantQ := wl.Quantized.(*nf4.Matrix)
		if !wantQ {
			if gl.Quantized != nil || !slices.Equal(gl.Dense, wl.Dense) {
				t.Fatalf("%s: want the same dense weight, got quantized %v", wl.Name, gl.Quantized != nil)
			}
			continue
		}
		gm, ok := gl.Quantized.(*nf4.Matrix)
		if !ok || gl.Dense != nil {
			t.Fatalf("%s: loaded as %T (dense %d values), want an NF4 matrix", wl.Name, gl.Quantized, len(gl.Dense))
		}
		gp, wp := gm.Parts(), wm.Parts()
		switch {
		case gp.Rows != wp.Rows || gp.Cols != wp.Cols || gp.BlockSize != wp.BlockSize || gp.DType != wp.DType:
			t.Fatalf("%s: [%d %d] block %d %s, want [%d %d] block %d %s", wl.Name,
				gp.Rows, gp.Cols, gp.BlockSize, gp.DType, wp.Rows, wp.Cols, wp.BlockSize, wp.DType)
		case !bytes.Equal(gp.Packed, wp.Packed):
			t.Fatalf("%s: packed codes differ", wl.Name)
		case !slices.Equal(bits(gp.Absmax), bits(wp.Absmax)):
			t.Fatalf("%s: absmax differs", wl.Name)
		case !bytes.Equal(gp.QuantAbsmax, wp.QuantAbsmax) || !slices.Equal(bits(gp.NestedAbsmax), bits(wp.NestedAbsmax)):
			t.Fatalf("%s: double-quantized absmax differs", wl.Name)
		case !slices.Equal(bits(gp.NestedCode), bits(wp.NestedCode)) || gp.NestedBlockSize != wp.NestedBlockSize ||
			math.Float32bits(gp.Offset) != math.Float32bits(wp.Offset):
			t.Fatalf("%s: nested map, block size or offset differs", wl.Name)
		}
	}
	for l := range want.Layers {
		if !slices.Equal(got.Layers[l].AttnNorm, want.Layers[l].AttnNorm) || !slices.Equal(got.Layers[l].MLPNorm, want.Layers[l].MLPNorm) {
			t.Fatalf("layer %d norms differ", l)
		}
	}
	gotHead, err := got.Output.float32s()
	if err != nil {
		t.Fatal(err)
	}
	_, half := got.Output.Quantized.(*quant.Half)
	if got.Output.Quantized != nil && !half || !slices.Equal(bits(gotHead), bits(want.Output.Dense)) {
		t.Fatal("output head differs")
	}
}

// hfReadConfigMap returns config.json in dir as a generic map.
func hfReadConfigMap(t *testing.T, dir string) (map[string]any, []byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, hfConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m, data
}

func TestWriteLoadHFNF4(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tied  bool
		dtype safetensors.DType
		round func(float32) float32
		opts  nf4.Options
	}{
		{"double quant, untied, bf16", false, safetensors.BF16, hfRoundBF16, nf4.Options{}},
		{"plain absmax, tied, f32, block 128", true, safetensors.F32, nil, nf4.Options{BlockSize: 128, DisableDoubleQuant: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hfTestConfig()
			cfg.TiedOutput = tc.tied
			want := hfNF4Weights(t, cfg, 11, tc.round, tc.opts)
			dir := t.TempDir()
			if err := WriteHF(dir, want, tc.dtype); err != nil {
				t.Fatal(err)
			}
			got, err := loadHF(dir)
			if err != nil {
				t.Fatal(err)
			}
			hfAssertSameNF4(t, got, want)
			// TestWriteLoadHFNF4Logits (logits_test.go) runs both models.

			f, err := safetensors.Open(filepath.Join(dir, hfWeightsFile))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			q, _ := f.Tensor("model.layers.0.self_attn.q_proj.weight")
			if q.DType != safetensors.U8 || !slices.Equal(q.Shape, []int{128, 1}) {
				t.Errorf("q_proj.weight is %s %v, want U8 [128 1] (256 codes, two per byte)", q.DType, q.Shape)
			}
			if _, ok := f.Tensor("model.layers.1.mlp.down_proj.weight" + bnbNF4StateSuffix); !ok {
				t.Error("down_proj has no quant_state tensor")
			}
			if e, _ := f.Tensor("model.embed_tokens.weight"); e.DType != tc.dtype {
				t.Errorf("embedding is %s, want %s", e.DType, tc.dtype)
			}

			raw, data := hfReadConfigMap(t, dir)
			qc, ok := raw["quantization_config"].(map[string]any)
			if !ok {
				t.Fatalf("config.json has no quantization_config: %s", data)
			}
			// The keys and values of BitsAndBytesConfig(load_in_4bit=True,
			// bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=...).to_dict()
			// in transformers (utils/quantization_config.py).
			wantQC := map[string]any{
				"_load_in_4bit": true, "_load_in_8bit": false, "bnb_4bit_compute_dtype": "float32",
				"bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": "nf4",
				"bnb_4bit_use_double_quant": !tc.opts.DisableDoubleQuant, "llm_int8_enable_fp32_cpu_offload": false,
				"llm_int8_has_fp16_weight": false, "llm_int8_skip_modules": nil, "llm_int8_threshold": 6.0,
				"load_in_4bit": true, "load_in_8bit": false, "quant_method": "bitsandbytes",
			}
			if len(qc) != len(wantQC) {
				t.Errorf("quantization_config has %d keys, want %d: %v", len(qc), len(wantQC), qc)
			}
			for k, v := range wantQC {
				if qc[k] != v {
					t.Errorf("quantization_config[%q] = %v, want %v", k, qc[k], v)
				}
			}
			// Python must read the threshold as a float: BitsAndBytesConfig
			// refuses an int.
			if !bytes.Contains(data, []byte(`"llm_int8_threshold": 6.0`)) {
				t.Errorf("llm_int8_threshold not written as 6.0: %s", data)
			}
		})
	}
}

// Block linears left dense are listed in llm_int8_skip_modules, after
// lm_head, and load back dense.
func TestWriteLoadHFNF4Mixed(t *testing.T) {
	cfg := hfTestConfig()
	want := hfNF4Weights(t, cfg, 12, nil, nf4.Options{})
	down := want.Layers[1].Down
	down.Dense = make([]float32, down.Out*down.In)
	if err := down.Quantized.DequantizeRows(down.Dense, 0, down.Out); err != nil {
		t.Fatal(err)
	}
	down.Quantized = nil
	dir := t.TempDir()
	if err := WriteHF(dir, want, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	raw, _ := hfReadConfigMap(t, dir)
	skip := raw["quantization_config"].(map[string]any)["llm_int8_skip_modules"]
	if b, _ := json.Marshal(skip); string(b) != `["lm_head","model.layers.1.mlp.down_proj"]` {
		t.Errorf("llm_int8_skip_modules = %s", b)
	}
	got, err := loadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	hfAssertSameNF4(t, got, want)
}

func TestLoadHFNF4Sharded(t *testing.T) {
	want := hfNF4Weights(t, hfTestConfig(), 13, nil, nf4.Options{})
	dir := t.TempDir()
	if err := WriteHF(dir, want, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	hfShard(t, dir)
	got, err := loadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	hfAssertSameNF4(t, got, want)
}

func TestWriteHFNF4Errors(t *testing.T) {
	tests := []struct {
		name string
		edit func(t *testing.T, w *Weights)
		want string
	}{
		{"int4 linear", func(t *testing.T, w *Weights) {
			up := w.Layers[0].Up
			dense := make([]float32, up.Out*up.In)
			up.Quantized.DequantizeRows(dense, 0, up.Out)
			m, err := quant.QuantizeInt4(dense, up.Out, up.In, 64)
			if err != nil {
				t.Fatal(err)
			}
			up.Quantized = m
		}, "model.layers.0.mlp.up_proj.weight: int4-quantized weights cannot be written: only NF4"},
		{"mixed double quantization", func(t *testing.T, w *Weights) {
			k := w.Layers[1].K
			dense := make([]float32, k.Out*k.In)
			k.Quantized.DequantizeRows(dense, 0, k.Out)
			m, err := nf4.Quantize(dense, k.Out, k.In, nf4.Options{DisableDoubleQuant: true})
			if err != nil {
				t.Fatal(err)
			}
			k.Quantized = m
		}, "model.layers.1.self_attn.k_proj has double quantization off but model.layers.0.self_attn.q_proj has it on"},
		{"NF4 output head", func(t *testing.T, w *Weights) {
			m, err := nf4.Quantize(w.Output.Dense, w.Output.Out, w.Output.In, nf4.Options{})
			if err != nil {
				t.Fatal(err)
			}
			w.Output.Dense, w.Output.Quantized = nil, m
		}, "lm_head.weight: the output head is nf4-quantized"},
		{"dense and quantized", func(t *testing.T, w *Weights) {
			w.Layers[0].V.Dense = make([]float32, 128)
		}, "model.layers.0.self_attn.v_proj.weight: linear layer holds both dense and quantized data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := hfNF4Weights(t, hfTestConfig(), 14, nil, nf4.Options{})
			tt.edit(t, w)
			dir := t.TempDir()
			err := WriteHF(dir, w, safetensors.F32)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("failed WriteHF left %d files behind", len(entries))
			}
		})
	}
}

// hfEditQuantConfig rewrites config.json's quantization_config through edit.
func hfEditQuantConfig(t *testing.T, dir string, edit func(qc map[string]any)) {
	t.Helper()
	hfEditConfig(t, dir, func(m map[string]any) { edit(m["quantization_config"].(map[string]any)) })
}

// hfRenameTensor renames one tensor of model.safetensors in dir.
func hfRenameTensor(t *testing.T, dir, from, to string) {
	t.Helper()
	hfEditTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
		for i := range ts {
			if ts[i].Name == from {
				ts[i].Name = to
				return ts
			}
		}
		t.Fatalf("no tensor %s", from)
		return nil
	})
}

// hfSetQuantState replaces the quant_state JSON of weight key.
func hfSetQuantState(t *testing.T, dir, key, state string) {
	t.Helper()
	name := key + bnbNF4StateSuffix
	hfEditTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
		return hfReplace(ts, name, safetensors.Tensor{Name: name, DType: safetensors.U8, Shape: []int{len(state)}, Data: []byte(state)})
	})
}

func TestLoadHFNF4Errors(t *testing.T) {
	const kProj = "model.layers.0.self_attn.k_proj.weight"
	const upProj = "model.layers.1.mlp.up_proj.weight"
	tests := []struct {
		name  string
		edit  func(t *testing.T, dir string)
		wants []string // "$DIR" stands for the checkpoint directory
	}{
		{"quant_state shape transposed", func(t *testing.T, dir string) {
			hfSetQuantState(t, dir, kProj, `{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [16, 8]}`)
		}, []string{"$DIR/model.safetensors", "tensor " + kProj + bnbNF4StateSuffix + " gives shape [16 8], want [8 16]"}},
		{"quant_state shape larger", func(t *testing.T, dir string) {
			hfSetQuantState(t, dir, kProj, `{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [16, 16]}`)
		}, []string{"gives shape [16 16], want [8 16]"}},
		{"quant_state not JSON", func(t *testing.T, dir string) {
			hfSetQuantState(t, dir, kProj, `{"shape": [8,`)
		}, []string{"tensor " + kProj + bnbNF4StateSuffix + ": quant_state JSON"}},
		{"quant_state not U8", func(t *testing.T, dir string) {
			name := kProj + bnbNF4StateSuffix
			hfEditTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				return hfReplace(ts, name, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: []int{1}, Data: make([]byte, 4)})
			})
		}, []string{"tensor " + kProj + bnbNF4StateSuffix + " has dtype F32, want U8"}},
		{"missing absmax", func(t *testing.T, dir string) {
			hfEditTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				return slices.DeleteFunc(ts, func(x safetensors.Tensor) bool { return x.Name == upProj+".absmax" })
			})
		}, []string{"$DIR/model.safetensors", "no tensor " + upProj + ".absmax"}},
		{"packed codes too short", func(t *testing.T, dir string) {
			hfEditTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				return hfReplace(ts, upProj, safetensors.Tensor{Name: upProj, DType: safetensors.U8, Shape: []int{10, 1}, Data: make([]byte, 10)})
			})
		}, []string{upProj + ": shape [10 1] holds 10 elements, want 192"}},
		{"quant_map is not NF4", func(t *testing.T, dir string) {
			name := upProj + ".quant_map"
			hfEditTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				fp4 := quant.FP4Codebook()
				return hfReplace(ts, name, safetensors.Tensor{Name: name, DType: safetensors.F32, Shape: []int{16}, Data: safetensors.Float32Bytes(fp4[:])})
			})
		}, []string{upProj + ".quant_map", "not an NF4 weight"}},
		{"fp4 weight", func(t *testing.T, dir string) {
			hfRenameTensor(t, dir, kProj+bnbNF4StateSuffix, kProj+bnbFP4StateSuffix)
		}, []string{"$DIR/model.safetensors", "tensor " + kProj + bnbFP4StateSuffix + ": fp4 checkpoints are not supported"}},
		{"4-bit lm_head", func(t *testing.T, dir string) {
			name := "lm_head.weight" + bnbNF4StateSuffix
			hfEditTensors(t, dir, func(ts []safetensors.Tensor) []safetensors.Tensor {
				return append(ts, safetensors.Tensor{Name: name, DType: safetensors.U8, Shape: []int{2}, Data: []byte("{}")})
			})
		}, []string{"tensor lm_head.weight" + bnbNF4StateSuffix + ": a 4-bit output head is not supported"}},
		{"no quantization_config", func(t *testing.T, dir string) {
			hfEditConfig(t, dir, func(m map[string]any) { delete(m, "quantization_config") })
		}, []string{"tensor model.layers.0.self_attn.q_proj.weight" + bnbNF4StateSuffix + " marks a bitsandbytes 4-bit weight, but config.json has no quantization_config"}},
		{"config says fp4", func(t *testing.T, dir string) {
			hfEditQuantConfig(t, dir, func(qc map[string]any) { qc["bnb_4bit_quant_type"] = "fp4" })
		}, []string{"$DIR/config.json", "quantization_config", "fp4 checkpoints are not supported"}},
		{"config without quant type", func(t *testing.T, dir string) {
			hfEditQuantConfig(t, dir, func(qc map[string]any) { delete(qc, "bnb_4bit_quant_type") })
		}, []string{"the default when absent"}},
		{"config says 8-bit", func(t *testing.T, dir string) {
			hfEditQuantConfig(t, dir, func(qc map[string]any) {
				qc["load_in_4bit"], qc["_load_in_4bit"], qc["load_in_8bit"], qc["_load_in_8bit"] = false, false, true, true
			})
		}, []string{"load_in_8bit: 8-bit (LLM.int8) checkpoints are not supported"}},
		{"config says not 4-bit", func(t *testing.T, dir string) {
			hfEditQuantConfig(t, dir, func(qc map[string]any) { qc["load_in_4bit"] = false })
		}, []string{"load_in_4bit is not true"}},
		{"other quant method", func(t *testing.T, dir string) {
			hfEditQuantConfig(t, dir, func(qc map[string]any) { qc["quant_method"] = "gptq" })
		}, []string{`quant_method "gptq" is not supported`}},
		{"other storage", func(t *testing.T, dir string) {
			hfEditQuantConfig(t, dir, func(qc map[string]any) { qc["bnb_4bit_quant_storage"] = "bfloat16" })
		}, []string{`bnb_4bit_quant_storage "bfloat16" is not supported`}},
		{"double quant disagrees", func(t *testing.T, dir string) {
			hfEditQuantConfig(t, dir, func(qc map[string]any) { qc["bnb_4bit_use_double_quant"] = false })
		}, []string{"tensor model.layers.0.self_attn.q_proj.weight" + bnbNF4StateSuffix + ": double quantization is on, but quantization_config's bnb_4bit_use_double_quant is false"}},
		{"skip list names a 4-bit module", func(t *testing.T, dir string) {
			hfEditQuantConfig(t, dir, func(qc map[string]any) { qc["llm_int8_skip_modules"] = []string{"lm_head", "mlp"} })
		}, []string{"tensor model.layers.0.mlp.gate_proj.weight" + bnbNF4StateSuffix + " marks a 4-bit weight, but quantization_config's llm_int8_skip_modules keeps model.layers.0.mlp.gate_proj in float"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteHF(dir, hfNF4Weights(t, hfTestConfig(), 15, nil, nf4.Options{}), safetensors.F32); err != nil {
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

// A dense checkpoint whose config.json claims bitsandbytes 4-bit weights is
// refused, naming the first linear that is not 4-bit, unless the skip list
// keeps it in float.
func TestLoadHFDenseWithQuantizationConfig(t *testing.T) {
	want := hfRandomWeights(hfTestConfig(), 16, nil)
	dir := t.TempDir()
	if err := WriteHF(dir, want, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	hfEditConfig(t, dir, func(m map[string]any) {
		m["quantization_config"] = map[string]any{"quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_type": "nf4"}
	})
	_, err := loadHF(dir)
	wantErr := "tensor model.layers.0.self_attn.q_proj.weight" + bnbNF4StateSuffix + " is missing: config.json's quantization_config makes model.layers.0.self_attn.q_proj 4-bit"
	if err == nil || !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("err = %v, want one containing %q", err, wantErr)
	}
	hfEditQuantConfig(t, dir, func(qc map[string]any) { qc["llm_int8_skip_modules"] = []string{"self_attn", "mlp"} })
	got, err := loadHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	hfAssertSameWeights(t, got, want)
}

func TestBnBSkips(t *testing.T) {
	q := &hfQuant{skip: []string{"lm_head", "self_attn", "model.layers.1.mlp.up_proj", "proj", ""}}
	for module, want := range map[string]bool{
		"lm_head":                         true,
		"model.layers.0.self_attn.q_proj": true,
		"model.layers.1.mlp.up_proj":      true,
		"model.layers.11.mlp.up_proj":     false,
		"model.layers.0.mlp.gate_proj":    false,
	} {
		if got := q.skips(module); got != want {
			t.Errorf("skips(%q) = %t, want %t", module, got, want)
		}
	}
}

// FuzzLoadHF feeds loadHF's parsing of config.json and model.safetensors
// (in memory, the files' bytes), seeded with dense and NF4 checkpoints written
// by WriteHF and the architectures of testdata/arch: it must return an error or weights that pass Validate, never
// panic.
func FuzzLoadHF(f *testing.F) {
	seed := func(w *Weights, dtype safetensors.DType) {
		dir := f.TempDir()
		if err := WriteHF(dir, w, dtype); err != nil {
			f.Fatal(err)
		}
		config, err := os.ReadFile(filepath.Join(dir, hfConfigFile))
		if err != nil {
			f.Fatal(err)
		}
		weights, err := os.ReadFile(filepath.Join(dir, hfWeightsFile))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(config, weights)
	}
	// A tiny model keeps the seeds small, so that the fuzzer's minimization
	// of interesting inputs is quick.
	cfg := Config{
		Dim: 8, HiddenDim: 8, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 4,
		VocabSize: 8, MaxSeqLen: 16, NormEps: 1e-5, RopeTheta: 10000,
	}
	seed(hfRandomWeights(cfg, 31, hfRoundBF16), safetensors.BF16)
	for _, opts := range []nf4.Options{{}, {BlockSize: 32, DisableDoubleQuant: true}} {
		w := hfRandomWeights(cfg, 32, nil)
		err := w.Quantize(context.Background(), nf4.Quantizer(opts))
		if err != nil {
			f.Fatal(err)
		}
		seed(w, safetensors.F32)
	}
	// The checkpoints of every supported architecture (testdata/arch).
	for _, name := range archFamilies {
		dir := filepath.Join("testdata", "arch", name)
		config, err := os.ReadFile(filepath.Join(dir, hfConfigFile))
		if err != nil {
			f.Fatal(err)
		}
		weights, err := os.ReadFile(filepath.Join(dir, hfWeightsFile))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(config, weights)
	}
	f.Fuzz(func(t *testing.T, config, weights []byte) {
		cfg, q, err := parseHFConfig(hfConfigFile, config)
		if err != nil {
			return
		}
		file, err := safetensors.Parse(weights)
		if err != nil {
			return
		}
		src := &hfSource{dir: "fuzz", files: map[string]*safetensors.File{hfWeightsFile: file}}
		w, err := src.weightsStream(context.Background(), cfg, q, streamOptions{})
		if err != nil {
			return
		}
		if err := w.Validate(); err != nil {
			t.Fatalf("loadHF returned weights that fail Validate: %v", err)
		}
	})
}
