package lora

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/golora/golora/internal/atomicfile"
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
// Everything is validated and both files are written and synced under
// temporary names before either replaces an existing file, so a failing Save
// leaves a previous adapter in dir intact. Each file is replaced atomically;
// only a crash between the two renames can leave new weights beside the old
// config.
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
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lora: Save: %w", err)
	}
	err = replaceFiles(dir, []pendingFile{
		{WeightsFile, func(w io.Writer) error {
			return safetensors.Write(w, tensors, map[string]string{"format": "pt"})
		}},
		{ConfigFile, func(w io.Writer) error {
			_, err := w.Write(config)
			return err
		}},
	})
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

// pendingFile is one file of a multi-file replacement.
type pendingFile struct {
	name  string
	write func(io.Writer) error
}

// replaceFiles writes every file to a synced temporary file in dir and only
// then renames them over their names, in order. If any write fails, nothing
// in dir has changed and the temporary files are removed.
func replaceFiles(dir string, files []pendingFile) (err error) {
	temps := make([]string, 0, len(files))
	defer func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}()
	for _, f := range files {
		tmp, err := os.CreateTemp(dir, "."+f.name+".pending-*")
		if err != nil {
			return err
		}
		tmp.Close()
		temps = append(temps, tmp.Name())
		if err := atomicfile.WriteFile(tmp.Name(), f.write, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	for i, f := range files {
		if err := os.Rename(temps[i], filepath.Join(dir, f.name)); err != nil {
			return fmt.Errorf("renaming %s into place: %w", f.name, err)
		}
	}
	temps = nil
	return syncDir(dir)
}

// syncDir makes completed renames in dir durable where directories can be
// synced (Windows makes them durable through the file system itself).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return d.Close()
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
	cfgPath := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(cfgPath)
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
			return nil, fmt.Errorf("lora: tensor %q: module %q is not selected by target_modules %s", key, module, cfg.TargetModules.describe())
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
	return v, nil
}
