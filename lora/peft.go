package lora

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/fsutil"
	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/model"
)

// File names and tensor key layout of PEFT's save_pretrained.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"

	keyPrefix = "base_model.model."
	keyA      = ".lora_A.weight"
	keyB      = ".lora_B.weight"
)

// adapterSet names the hidden entries of an adapter directory that hold the
// current pair of files (see Save).
const adapterSet = "adapter"

// tensorKey is PEFT's key of a pair tensor; which is "lora_A" or "lora_B".
func tensorKey(module, which string) string {
	return keyPrefix + module + "." + which + ".weight"
}

// Save writes a to dir (created if needed) as PEFT's save_pretrained does:
// adapter_config.json (every key PEFT writes, peft_type "LORA") and
// adapter_model.safetensors (float32 tensors
// base_model.model.<module>.lora_A.weight [r, in] and .lora_B.weight
// [out, r], metadata {"format": "pt"}).
//
// Everything is validated and both files are written and synced before
// either replaces an existing file, and the two are replaced together
// (atomicfile.WriteFiles): at every instant, a crash included, dir holds the
// old pair or the new pair. The names are symbolic links into the current
// version, the hidden directory ".adapter.v-*" (".adapter" links to it).
func Save(dir string, a *Adapter) error {
	if a == nil {
		return errors.New("lora: Save: nil adapter")
	}
	if len(a.split) > 0 {
		return errors.New("lora: Save: the adapter was read from PEFT pairs of fused modules (qkv_proj, gate_up_proj) and split for this base; its PEFT files are the ones it was loaded from")
	}
	m, err := a.Config.compile()
	if err != nil {
		return fmt.Errorf("lora: Save: %w", err)
	}
	tensors := make([]safetensors.Tensor, 0, 2*len(a.modules))
	for _, name := range a.modules {
		p := a.pairs[name]
		if len(p.A) != p.R*p.In || len(p.B) != p.Out*p.R {
			return fmt.Errorf("lora: Save: module %q: A has %d values and B %d, want %d and %d", name, len(p.A), len(p.B), p.R*p.In, p.Out*p.R)
		}
		if r, _ := m.rankAlpha(name); r != p.R {
			return fmt.Errorf("lora: Save: module %q has rank %d but the config gives it rank %d", name, p.R, r)
		}
		tensors = append(tensors,
			safetensors.Tensor{Name: tensorKey(name, "lora_A"), DType: safetensors.F32, Shape: []int{p.R, p.In}, Data: safetensors.Float32Bytes(p.A)},
			safetensors.Tensor{Name: tensorKey(name, "lora_B"), DType: safetensors.F32, Shape: []int{p.Out, p.R}, Data: safetensors.Float32Bytes(p.B)},
		)
	}
	config, err := encodeConfigFile(a.Config)
	if err != nil {
		return fmt.Errorf("lora: Save: %w", err)
	}
	err = atomicfile.WriteFiles(dir, adapterSet, []atomicfile.File{
		{Name: WeightsFile, Write: func(w io.Writer) error {
			return safetensors.Write(w, tensors, map[string]string{"format": "pt"})
		}},
		{Name: ConfigFile, Write: func(w io.Writer) error {
			_, err := w.Write(config)
			return err
		}},
	}, 0o644)
	if err != nil {
		return fmt.Errorf("lora: Save %s: %w", dir, err)
	}
	return nil
}

// encodeConfigFile renders c as PEFT does: sorted keys, two-space indent.
func encodeConfigFile(c Config) ([]byte, error) {
	compact, err := c.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, compact, "", "  "); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Load reads a PEFT LoRA adapter from dir (adapter_config.json and
// adapter_model.safetensors). Unknown config keys are kept, not refused;
// F16, BF16 and F64 tensors are converted to float32. It is an error, naming
// the file and tensor key, if a tensor is missing, unexpected (not a
// lora_A/lora_B weight of a module the config targets), not floating point,
// or of a shape that disagrees with its partner or with the config's rank.
// Load cannot know the base model: attach the adapter with Check, LoadFor or
// Adapters.Add, which also find targeted modules that have no tensors.
func Load(dir string) (*Adapter, error) {
	// Read both files from the version the config's link leads to, so
	// that a Save replacing the pair meanwhile cannot mix two versions.
	realCfg, err1 := filepath.EvalSymlinks(filepath.Join(dir, ConfigFile))
	realWeights, err2 := filepath.EvalSymlinks(filepath.Join(dir, WeightsFile))
	if err1 == nil && err2 == nil && filepath.Dir(realCfg) == filepath.Dir(realWeights) {
		dir = filepath.Dir(realCfg)
	}
	cfgPath := filepath.Join(dir, ConfigFile)
	data, err := fsutil.ReadRegular(cfgPath, fsutil.ConfigLimit)
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	wPath := filepath.Join(dir, WeightsFile)
	f, err := safetensors.Open(wPath)
	if errors.Is(err, fs.ErrNotExist) {
		if _, binErr := os.Stat(filepath.Join(dir, "adapter_model.bin")); binErr == nil {
			return nil, fmt.Errorf("lora: %s: only adapter_model.safetensors is supported, not the pickle adapter_model.bin", dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	defer f.Close()
	a, err := adapterFromTensors(cfg, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", wPath, err)
	}
	return a, nil
}

// LoadFor loads the adapter in dir and checks that it fits base (Check). On
// a phi3 base, pairs of the fused modules qkv_proj and gate_up_proj are split
// into exact per-part pairs (see the package documentation): the adapter
// then generates and merges, but is not trained or saved.
func LoadFor(dir string, base *model.Weights) (*Adapter, error) {
	a, err := Load(dir)
	if err != nil {
		return nil, err
	}
	if err := a.splitFused(base); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := a.Check(base); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return a, nil
}

// adapterFromTensors builds an adapter from the tensors of a PEFT weights file.
func adapterFromTensors(cfg Config, f *safetensors.File) (*Adapter, error) {
	m, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	type halves struct{ a, b *safetensors.Tensor }
	found := make(map[string]*halves)
	for _, key := range f.Names() {
		t, _ := f.Tensor(key)
		module, isA, ok := splitTensorKey(key)
		if !ok {
			return nil, fmt.Errorf("lora: unexpected tensor %q (want base_model.model.<module>.lora_A.weight or .lora_B.weight)", key)
		}
		if !m.allLinear && !m.targetsModule(module, nil) || m.allLinear && module == "lm_head" {
			why := m.whyNotTargeted(module)
			if m.allLinear {
				why = "all-linear leaves out the output head"
			}
			return nil, fmt.Errorf("lora: tensor %q: module %q is not adapted by this config: %s", key, module, why)
		}
		h := found[module]
		if h == nil {
			h = &halves{}
			found[module] = h
		}
		if isA {
			h.a = &t
		} else {
			h.b = &t
		}
	}
	if len(found) == 0 {
		return nil, errors.New("lora: the file holds no LoRA tensors")
	}
	a := &Adapter{Config: cloneConfig(cfg), pairs: make(map[string]*Pair, len(found))}
	for module, h := range found {
		if h.a == nil {
			return nil, fmt.Errorf("lora: tensor %q is missing (its partner %q is present)", tensorKey(module, "lora_A"), h.b.Name)
		}
		if h.b == nil {
			return nil, fmt.Errorf("lora: tensor %q is missing (its partner %q is present)", tensorKey(module, "lora_B"), h.a.Name)
		}
		if len(h.a.Shape) != 2 || len(h.b.Shape) != 2 {
			return nil, fmt.Errorf("lora: tensors %q %v and %q %v: want two dimensions each", h.a.Name, h.a.Shape, h.b.Name, h.b.Shape)
		}
		r, in, out := h.a.Shape[0], h.a.Shape[1], h.b.Shape[0]
		if h.b.Shape[1] != r {
			return nil, fmt.Errorf("lora: tensor %q has shape %v but %q has rank %d: want [%d %d]", h.b.Name, h.b.Shape, h.a.Name, r, out, r)
		}
		if r <= 0 || in <= 0 || out <= 0 {
			return nil, fmt.Errorf("lora: tensors %q %v and %q %v: empty dimension", h.a.Name, h.a.Shape, h.b.Name, h.b.Shape)
		}
		wantR, alpha := m.rankAlpha(module)
		if r != wantR {
			return nil, fmt.Errorf("lora: tensor %q has rank %d (shape %v) but the config gives module %q rank %d", h.a.Name, r, h.a.Shape, module, wantR)
		}
		p := &Pair{Module: module, In: in, Out: out, R: r, alpha: alpha, scaling: scaling(r, alpha, cfg.UseRSLoRA)}
		if p.A, err = floats(h.a); err != nil {
			return nil, err
		}
		if p.B, err = floats(h.b); err != nil {
			return nil, err
		}
		a.pairs[module] = p
		a.modules = append(a.modules, module)
	}
	slices.SortFunc(a.modules, naturalCompare)
	return a, nil
}

// splitTensorKey parses base_model.model.<module>.lora_{A,B}.weight.
func splitTensorKey(key string) (module string, isA, ok bool) {
	rest, ok := strings.CutPrefix(key, keyPrefix)
	if !ok {
		return "", false, false
	}
	if module, ok = strings.CutSuffix(rest, keyA); ok {
		isA = true
	} else if module, ok = strings.CutSuffix(rest, keyB); !ok {
		return "", false, false
	}
	return module, isA, module != ""
}

// floats converts a floating-point tensor to float32.
func floats(t *safetensors.Tensor) ([]float32, error) {
	switch t.DType {
	case safetensors.F32, safetensors.F16, safetensors.BF16, safetensors.F64:
	default:
		return nil, fmt.Errorf("lora: tensor %q has dtype %s; want F32, F16, BF16 or F64", t.Name, t.DType)
	}
	v, err := t.Float32s()
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("lora: tensor %q element %d is %v: the adapter holds non-finite values", t.Name, i, x)
		}
	}
	return v, nil
}
