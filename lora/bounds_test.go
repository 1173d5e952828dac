package lora

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/golora/golora/internal/fsutil"
)

// TestRankBound asks for a rank above min(in, out) of the targeted layers
// (16 is the model width, 8 the k/v projections' output): refused before
// allocation, naming the layer. The largest rank allowed still works.
func TestRankBound(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, nil)
	cfg := DefaultConfig()
	cfg.TargetModules = ModuleRegex(AllLinear)
	cfg.R = 100000
	_, err := New(base, cfg, 1)
	if err == nil || !strings.Contains(err.Error(), "at most 16") || !strings.Contains(err.Error(), "model.layers.0.") {
		t.Fatalf("rank 100000: err %v", err)
	}
	cfg.R = 9
	if _, err := New(base, cfg, 1); err == nil || !strings.Contains(err.Error(), "k_proj") {
		t.Fatalf("rank 9 on k_proj [8 16]: err %v", err)
	}
	cfg.R = 8
	mustNew(t, base, cfg, 1)
	cfg.R, cfg.RankPattern = 4, []RankRule{{Pattern: "down_proj", R: 41}}
	if _, err := New(base, cfg, 1); err == nil || !strings.Contains(err.Error(), "down_proj") {
		t.Fatalf("rank_pattern 41 on down_proj [16 40]: err %v", err)
	}
}

// TestLoadRefusesNonFinite puts NaN and ±Inf into a saved adapter: Load
// refuses each, naming the tensor.
func TestLoadRefusesNonFinite(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		a := mustNew(t, testBase(t, tinyConfig(), 1, nil), DefaultConfig(), 1)
		randomize(a, 2)
		p, _ := a.Pair("model.layers.1.self_attn.v_proj")
		p.B[3] = bad
		dir := t.TempDir()
		if err := Save(dir, a); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), "model.layers.1.self_attn.v_proj.lora_B.weight") {
			t.Errorf("%v: err %v", bad, err)
		}
	}
}

// TestLayersToTransformMessage loads tensors of a layer that
// layers_to_transform leaves out: the error says so.
func TestLayersToTransformMessage(t *testing.T) {
	dir, _, _ := tinyAdapterFiles(t)
	cfgPath := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	c.LayersToTransform = []int{0}
	js, err := encodeConfigFile(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(cfgPath); err != nil { // the link into the version
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, js, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(dir)
	if err == nil || !strings.Contains(err.Error(), "layers_to_transform [0]") || strings.Contains(err.Error(), "target_modules") {
		t.Errorf("err %v", err)
	}
}

// TestLoadRefusesSpecialConfig makes adapter_config.json a link to
// /dev/zero: refused at once as not a regular file.
func TestLoadRefusesSpecialConfig(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no /dev/zero")
	}
	dir, _, _ := tinyAdapterFiles(t)
	cfgPath := filepath.Join(dir, ConfigFile)
	if err := os.Remove(cfgPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", cfgPath); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); !errors.Is(err, fsutil.ErrNotRegular) {
		t.Errorf("err %v", err)
	}
}
