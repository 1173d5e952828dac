package lora

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/golora/golora/internal/safetensors"
)

// FuzzParseConfig feeds arbitrary bytes to the adapter_config.json parser.
// It must never panic, and a config it accepts must survive being written and
// read back unchanged.
func FuzzParseConfig(f *testing.F) {
	f.Add(readFixtureConfig(f))
	f.Add([]byte(`{"peft_type": "LORA"}`))
	f.Add([]byte(`{"peft_type": "LORA", "r": 4, "target_modules": ".*\\.(q|v)_proj", "rank_pattern": {"q_proj": 2, "v": 3},
		"alpha_pattern": {"layers\\.0\\..*": 1.5}, "layers_to_transform": null, "init_lora_weights": "gaussian"}`))
	f.Add([]byte(`{"peft_type": "LORA", "target_modules": ["q_proj"], "layers_to_transform": 3, "layers_pattern": ["layers", "h"],
		"exclude_modules": "lm_head", "use_rslora": true, "task_type": "CAUSAL_LM", "future": [1, {"a": null}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		first, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		again, err := ParseConfig(first)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", first, err)
		}
		second, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("round trip changed the config:\n%s\n%s", first, second)
		}
	})
}

// FuzzAdapterTensors feeds arbitrary safetensors files to the code that turns
// PEFT tensors into pairs. It must never panic, and the pairs it accepts must
// have the config's rank and hold exactly R·In and Out·R values.
func FuzzAdapterTensors(f *testing.F) {
	cfg, err := ParseConfig(readFixtureConfig(f))
	if err != nil {
		f.Fatal(err)
	}
	// Seed from the real PEFT file: layer 0's v_proj pair cut down to rank 2,
	// 8 inputs and 4 outputs. (The full pair, 48 kB, makes the fuzzer spend
	// its time minimizing large inputs.)
	src, err := safetensors.Open(filepath.Join(fixtureDir, WeightsFile))
	if err != nil {
		f.Fatal(err)
	}
	defer src.Close()
	const vA = "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight"
	const vB = "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"
	a, _ := src.Tensor(vA)
	b, _ := src.Tensor(vB)
	encode := func(ts ...safetensors.Tensor) []byte {
		var buf bytes.Buffer
		if err := safetensors.Write(&buf, ts, map[string]string{"format": "pt"}); err != nil {
			f.Fatal(err)
		}
		return buf.Bytes()
	}
	smallA := safetensors.Tensor{Name: vA, DType: a.DType, Shape: []int{2, 8}, Data: bytes.Clone(a.Data[:2*8*4])}
	smallB := safetensors.Tensor{Name: vB, DType: b.DType, Shape: []int{4, 2}, Data: bytes.Clone(b.Data[:4*2*4])}
	small := cfg
	small.R = 2
	f.Add(encode(smallA, smallB))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := safetensors.Parse(data)
		if err != nil {
			return
		}
		for _, c := range []Config{cfg, small} {
			a, err := adapterFromTensors(c, file)
			if err != nil {
				continue
			}
			for _, name := range a.Modules() {
				p, _ := a.Pair(name)
				if p.R != c.R || len(p.A) != p.R*p.In || len(p.B) != p.Out*p.R {
					t.Fatalf("%s: |A| %d |B| %d for r %d in %d out %d", name, len(p.A), len(p.B), p.R, p.In, p.Out)
				}
			}
		}
	})
}

// adapterFromTensors builds an adapter from the tensors of a PEFT weights
// file as Load does, without the files around it.
func adapterFromTensors(cfg Config, f *safetensors.File) (*Adapter, error) {
	a, tensors, err := pairsFromHeader(cfg, f)
	if err != nil {
		return nil, err
	}
	if err := decodePairs(a, tensors); err != nil {
		return nil, err
	}
	return a, nil
}
