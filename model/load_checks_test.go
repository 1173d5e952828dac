package model

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hfDirOf writes w with the embedded tokenizer as a Hugging Face directory.
func hfDirOf(t *testing.T, w *Weights) string {
	t.Helper()
	ck, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ck.WriteTokenizer(dir); err != nil {
		t.Fatal(err)
	}
	if err := WriteHF(dir, w, F32); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLoadRefusesNonFiniteWeights writes a model with one NaN or infinite
// weight: Load names the tensor.
func TestLoadRefusesNonFiniteWeights(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		ck, err := Default()
		if err != nil {
			t.Fatal(err)
		}
		ck.Weights.Layers[2].Q.Dense[7] = bad
		dir := hfDirOf(t, ck.Weights)
		_, err = Load(context.Background(), dir, LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), "model.layers.2.self_attn.q_proj.weight element 7") {
			t.Errorf("%v: err %v", bad, err)
		}
	}
	ck, _ := Default()
	ck.Weights.Norm[0] = float32(math.NaN())
	if err := ck.Weights.CheckFinite(); err == nil || !strings.Contains(err.Error(), "model.norm.weight") {
		t.Errorf("norm: err %v", err)
	}
}

// TestLoadRefusesUnusedTensors loads a checkpoint whose config.json names
// fewer layers than it holds: the unused layer's tensors are named.
func TestLoadRefusesUnusedTensors(t *testing.T) {
	ck, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	dir := hfDirOf(t, ck.Weights)
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	layers := int(cfg["num_hidden_layers"].(float64))
	cfg["num_hidden_layers"] = layers - 1
	data, _ = json.Marshal(cfg)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(context.Background(), dir, LoadOptions{})
	want := "model.layers." + string(rune('0'+layers-1)) + "."
	if err == nil || !strings.Contains(err.Error(), "not used") || !strings.Contains(err.Error(), want) {
		t.Errorf("err %v, want the tensors of %s", err, want)
	}
}
