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

// TensorKey is PEFT's key of a pair tensor in adapter_model.safetensors
// (e.g. "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
// which is "lora_A" or "lora_B".
func TensorKey(module, which string) string {
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
			safetensors.Tensor{Name: TensorKey(name, "lora_A"), DType: safetensors.F32, Shape: []int{p.R, p.In}, Data: safetensors.Float32Bytes(p.A)},
			safetensors.Tensor{Name: TensorKey(name, "lora_B"), DType: safetensors.F32, Shape: []int{p.Out, p.R}, Data: safetensors.Float32Bytes(p.B)},
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
	r, err := OpenReader(dir)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := decodePairs(r.a, r.tensors); err != nil {
		return nil, fmt.Errorf("%s: %w", r.path, err)
	}
	return r.a, nil
}

// Reader reads a PEFT LoRA adapter's pairs a part at a time into memory the
// caller gives, so that a server caching adapters in memory of its own
// decodes each matrix straight into its place, without a float32 copy of the
// adapter on the way. OpenReader checks the config and the weights file's
// header as Load does; ReadA and ReadB decode values (F16, BF16 and F64
// converted to float32) and refuse non-finite ones. A Reader is not safe for
// concurrent use; Close it when done.
type Reader struct {
	a       *Adapter // its pairs have shapes and scalings, no values
	tensors map[string]*halves
	file    *safetensors.File
	path    string
}

// halves are the two tensors of one pair.
type halves struct{ a, b *safetensors.Tensor }

// OpenReader opens the PEFT adapter in dir (adapter_config.json and
// adapter_model.safetensors), checking what Load checks except the values.
func OpenReader(dir string) (*Reader, error) {
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
	a, tensors, err := pairsFromHeader(cfg, f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", wPath, err)
	}
	return &Reader{a: a, tensors: tensors, file: f, path: wPath}, nil
}

// Config returns the adapter's configuration.
func (r *Reader) Config() Config { return cloneConfig(r.a.Config) }

// Modules returns the adapted modules in natural order.
func (r *Reader) Modules() []string { return slices.Clone(r.a.modules) }

// Shape returns the shape and scaling of the module's pair: A is [r, in] and
// B [out, r].
func (r *Reader) Shape(module string) (in, out, rank int, scaling float64, ok bool) {
	p, ok := r.a.pairs[module]
	if !ok {
		return 0, 0, 0, 0, false
	}
	return p.In, p.Out, p.R, p.Scaling(), true
}

// Check reports whether the adapter fits base, as Adapter.Check does.
func (r *Reader) Check(base *model.Weights) error { return r.a.check(base, false) }

// ReadA decodes elements [off, off+len(dst)) of the module's A ([r, in],
// row-major) into dst.
func (r *Reader) ReadA(module string, dst []float32, off int) error {
	h, ok := r.tensors[module]
	if !ok {
		return fmt.Errorf("lora: %s: no pair for module %q", r.path, module)
	}
	return r.read(h.a, dst, off)
}

// ReadB decodes elements [off, off+len(dst)) of the module's B ([out, r],
// row-major) into dst.
func (r *Reader) ReadB(module string, dst []float32, off int) error {
	h, ok := r.tensors[module]
	if !ok {
		return fmt.Errorf("lora: %s: no pair for module %q", r.path, module)
	}
	return r.read(h.b, dst, off)
}

func (r *Reader) read(t *safetensors.Tensor, dst []float32, off int) error {
	if err := decodeFloats(dst, t, off); err != nil {
		return fmt.Errorf("%s: %w", r.path, err)
	}
	return nil
}

// Close releases the weights file.
func (r *Reader) Close() error { return r.file.Close() }

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

// pairsFromHeader builds an adapter whose pairs have the shapes of the
// tensors of a PEFT weights file and no values yet, and returns the tensors
// of each module.
func pairsFromHeader(cfg Config, f *safetensors.File) (*Adapter, map[string]*halves, error) {
	m, err := cfg.compile()
	if err != nil {
		return nil, nil, err
	}
	found := make(map[string]*halves)
	for _, key := range f.Names() {
		t, _ := f.Tensor(key)
		module, isA, ok := splitTensorKey(key)
		if !ok {
			return nil, nil, fmt.Errorf("lora: unexpected tensor %q (want base_model.model.<module>.lora_A.weight or .lora_B.weight)", key)
		}
		if !m.allLinear && !m.targetsModule(module, nil) || m.allLinear && module == "lm_head" {
			why := m.whyNotTargeted(module)
			if m.allLinear {
				why = "all-linear leaves out the output head"
			}
			return nil, nil, fmt.Errorf("lora: tensor %q: module %q is not adapted by this config: %s", key, module, why)
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
		return nil, nil, errors.New("lora: the file holds no LoRA tensors")
	}
	a := &Adapter{Config: cloneConfig(cfg), pairs: make(map[string]*Pair, len(found))}
	for module, h := range found {
		if h.a == nil {
			return nil, nil, fmt.Errorf("lora: tensor %q is missing (its partner %q is present)", TensorKey(module, "lora_A"), h.b.Name)
		}
		if h.b == nil {
			return nil, nil, fmt.Errorf("lora: tensor %q is missing (its partner %q is present)", TensorKey(module, "lora_B"), h.a.Name)
		}
		if len(h.a.Shape) != 2 || len(h.b.Shape) != 2 {
			return nil, nil, fmt.Errorf("lora: tensors %q %v and %q %v: want two dimensions each", h.a.Name, h.a.Shape, h.b.Name, h.b.Shape)
		}
		r, in, out := h.a.Shape[0], h.a.Shape[1], h.b.Shape[0]
		if h.b.Shape[1] != r {
			return nil, nil, fmt.Errorf("lora: tensor %q has shape %v but %q has rank %d: want [%d %d]", h.b.Name, h.b.Shape, h.a.Name, r, out, r)
		}
		if r <= 0 || in <= 0 || out <= 0 {
			return nil, nil, fmt.Errorf("lora: tensors %q %v and %q %v: empty dimension", h.a.Name, h.a.Shape, h.b.Name, h.b.Shape)
		}
		wantR, alpha := m.rankAlpha(module)
		if r != wantR {
			return nil, nil, fmt.Errorf("lora: tensor %q has rank %d (shape %v) but the config gives module %q rank %d", h.a.Name, r, h.a.Shape, module, wantR)
		}
		for _, t := range []*safetensors.Tensor{h.a, h.b} {
			if err := checkFloatTensor(t); err != nil {
				return nil, nil, err
			}
		}
		a.pairs[module] = &Pair{Module: module, In: in, Out: out, R: r, alpha: alpha, scaling: scaling(r, alpha, cfg.UseRSLoRA)}
		a.modules = append(a.modules, module)
	}
	slices.SortFunc(a.modules, naturalCompare)
	return a, found, nil
}

// decodePairs gives the pairs of a their values.
func decodePairs(a *Adapter, tensors map[string]*halves) error {
	for _, module := range a.modules {
		p, h := a.pairs[module], tensors[module]
		p.A, p.B = make([]float32, p.R*p.In), make([]float32, p.Out*p.R)
		if err := decodeFloats(p.A, h.a, 0); err != nil {
			return err
		}
		if err := decodeFloats(p.B, h.b, 0); err != nil {
			return err
		}
	}
	return nil
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

// checkFloatTensor refuses a tensor that is not floating point or whose data
// does not hold its shape.
func checkFloatTensor(t *safetensors.Tensor) error {
	switch t.DType {
	case safetensors.F32, safetensors.F16, safetensors.BF16, safetensors.F64:
	default:
		return fmt.Errorf("lora: tensor %q has dtype %s; want F32, F16, BF16 or F64", t.Name, t.DType)
	}
	if _, err := t.NumElements(); err != nil {
		return fmt.Errorf("lora: %w", err)
	}
	return nil
}

// decodeFloats writes elements [off, off+len(dst)) of a floating-point
// tensor (checked by checkFloatTensor) into dst as float32, refusing
// non-finite values.
func decodeFloats(dst []float32, t *safetensors.Tensor, off int) error {
	if err := t.DecodeFloat32s(dst, off); err != nil {
		return fmt.Errorf("lora: %w", err)
	}
	for i, x := range dst {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("lora: tensor %q element %d is %v: the adapter holds non-finite values", t.Name, off+i, x)
		}
	}
	return nil
}
