package lora

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/model"
)

// smolLMBase is a SmolLM-135M-shaped base whose q_proj and v_proj have their
// real shapes and random weights; the other linears have shapes only.
func smolLMBase(t testing.TB, c model.Config) *model.Weights {
	return testBase(t, c, 11, map[string]bool{"self_attn.q_proj": true, "self_attn.v_proj": true})
}

func openTensors(t testing.TB, path string) *safetensors.File {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func decodeJSONFile(t testing.TB, path string) map[string]any {
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

// TestPEFTAdapterOnSmolLM is the acceptance test: the adapter PEFT 0.12.0
// wrote for SmolLM-135M-Instruct loads onto a base of that shape, and saving
// it reproduces its tensors byte for byte and its config key for key.
func TestPEFTAdapterOnSmolLM(t *testing.T) {
	base := smolLMBase(t, smolLMConfig())
	a, err := LoadFor(fixtureDir, base)
	if err != nil {
		t.Fatal(err)
	}
	c := a.Config
	// Expected values from the fixture's README and adapter_config.json.
	if c.R != 16 || c.Alpha != 32 || c.Dropout != 0.05 || !slices.Equal(c.TargetModules.Names, []string{"v_proj", "q_proj"}) {
		t.Errorf("config: r %d alpha %v dropout %v targets %+v", c.R, c.Alpha, c.Dropout, c.TargetModules)
	}
	if len(a.Modules()) != 60 {
		t.Fatalf("%d modules, want 60 (q_proj and v_proj of 30 layers)", len(a.Modules()))
	}
	src := openTensors(t, filepath.Join(fixtureDir, WeightsFile))
	if src.Len() != 120 {
		t.Fatalf("fixture has %d tensors, want 120", src.Len())
	}
	for i := range base.Layers {
		for _, lin := range []*model.Linear{base.Layers[i].Q, base.Layers[i].V} {
			p, ok := a.Pair(lin.Name)
			if !ok {
				t.Fatalf("no pair for %s", lin.Name)
			}
			if p.R != 16 || p.In != 576 || p.Out != lin.Out || p.Scaling() != 2 {
				t.Errorf("%s: r %d in %d out %d scaling %v", lin.Name, p.R, p.In, p.Out, p.Scaling())
			}
			for which, got := range map[string][]float32{"lora_A": p.A, "lora_B": p.B} {
				st, ok := src.Tensor(TensorKey(lin.Name, which))
				if !ok {
					t.Fatalf("fixture lacks %s", TensorKey(lin.Name, which))
				}
				want, err := st.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				if !sameBits(got, want) {
					t.Errorf("%s: values differ from the file", st.Name)
				}
			}
			if allZero(p.B) {
				t.Errorf("%s: lora_B is zero, but the fixture's adapter is trained", lin.Name)
			}
		}
	}
	if q, _ := a.Pair("model.layers.7.self_attn.q_proj"); q.Out != 576 {
		t.Errorf("q_proj out %d", q.Out)
	}
	if v, _ := a.Pair("model.layers.7.self_attn.v_proj"); v.Out != 192 {
		t.Errorf("v_proj out %d", v.Out)
	}

	dir := t.TempDir()
	if err := Save(dir, a); err != nil {
		t.Fatal(err)
	}
	out := openTensors(t, filepath.Join(dir, WeightsFile))
	got, want := out.Names(), src.Names()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("saved tensor names differ from the fixture's")
	}
	for _, name := range want {
		x, _ := src.Tensor(name)
		y, _ := out.Tensor(name)
		if x.DType != y.DType || !slices.Equal(x.Shape, y.Shape) || !bytes.Equal(x.Data, y.Data) {
			t.Errorf("%s: saved %s %v differs from the fixture's %s %v", name, y.DType, y.Shape, x.DType, x.Shape)
		}
	}
	if md := out.Metadata(); !reflect.DeepEqual(md, map[string]string{"format": "pt"}) {
		t.Errorf("metadata %v", md)
	}
	// Beyond equal values: PEFT's json.dumps(indent=2, sort_keys=True)
	// layout is reproduced byte for byte.
	origBytes, _ := os.ReadFile(filepath.Join(fixtureDir, ConfigFile))
	savedBytes, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	if !bytes.Equal(origBytes, savedBytes) {
		t.Errorf("saved adapter_config.json is not byte-identical to the fixture's:\n%s", savedBytes)
	}
	orig := decodeJSONFile(t, filepath.Join(fixtureDir, ConfigFile))
	saved := decodeJSONFile(t, filepath.Join(dir, ConfigFile))
	for k, v := range orig {
		if !reflect.DeepEqual(saved[k], v) {
			t.Errorf("config key %q: saved %v, fixture %v", k, saved[k], v)
		}
	}
	for k := range saved {
		if _, ok := orig[k]; !ok {
			t.Errorf("saved config has key %q that PEFT 0.12.0 did not write", k)
		}
	}
}

func TestPEFTAdapterRefusedByOtherBase(t *testing.T) {
	c := smolLMConfig()
	c.Dim, c.Heads, c.KVHeads = 960, 15, 5 // SmolLM-360M's hidden size
	c.Layers = 2
	_, err := LoadFor(fixtureDir, smolLMBase(t, c))
	if err == nil {
		t.Fatal("adapter for hidden size 576 accepted by a base of hidden size 960")
	}
	for _, want := range []string{`"model.layers.0.self_attn.q_proj"`, "[576 576]", "[960 960]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// tinyAdapterFiles saves a random adapter for the tiny base and returns its
// directory, config bytes and tensors.
func tinyAdapterFiles(t *testing.T) (string, []byte, []safetensors.Tensor) {
	t.Helper()
	a := mustNew(t, testBase(t, tinyConfig(), 1, nil), DefaultConfig(), 1)
	randomize(a, 2)
	dir := t.TempDir()
	if err := Save(dir, a); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	f := openTensors(t, filepath.Join(dir, WeightsFile))
	var ts []safetensors.Tensor
	for _, name := range f.Names() {
		tt, _ := f.Tensor(name)
		tt.Data = slices.Clone(tt.Data)
		ts = append(ts, tt)
	}
	return dir, cfg, ts
}

func writeAdapterDir(t *testing.T, cfg []byte, ts []safetensors.Tensor) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadRefusesBadTensors(t *testing.T) {
	_, cfg, ts := tinyAdapterFiles(t)
	const qA = "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"
	const qB = "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"
	edit := func(f func([]safetensors.Tensor) []safetensors.Tensor) []safetensors.Tensor {
		c := slices.Clone(ts)
		return f(c)
	}
	without := func(key string) func([]safetensors.Tensor) []safetensors.Tensor {
		return func(c []safetensors.Tensor) []safetensors.Tensor {
			return slices.DeleteFunc(c, func(t safetensors.Tensor) bool { return t.Name == key })
		}
	}
	extra := func(name string, dtype safetensors.DType, shape []int) func([]safetensors.Tensor) []safetensors.Tensor {
		return func(c []safetensors.Tensor) []safetensors.Tensor {
			n := 1
			for _, d := range shape {
				n *= d
			}
			return append(c, safetensors.Tensor{Name: name, DType: dtype, Shape: shape, Data: make([]byte, n*dtype.Size())})
		}
	}
	replace := func(key string, dtype safetensors.DType, shape []int) func([]safetensors.Tensor) []safetensors.Tensor {
		return func(c []safetensors.Tensor) []safetensors.Tensor {
			return extra(key, dtype, shape)(without(key)(c))
		}
	}
	for _, tc := range []struct {
		name    string
		tensors []safetensors.Tensor
		want    []string
	}{
		{"missing B", edit(without(qB)), []string{qB, "missing"}},
		{"missing A", edit(without(qA)), []string{qA, "missing"}},
		{"untargeted module", edit(extra("base_model.model.model.layers.0.mlp.up_proj.lora_A.weight", safetensors.F32, []int{8, 16})),
			[]string{"model.layers.0.mlp.up_proj", "target_modules"}},
		{"not a LoRA tensor", edit(extra("base_model.model.model.embed_tokens.weight", safetensors.F32, []int{2, 2})),
			[]string{"base_model.model.model.embed_tokens.weight", "unexpected"}},
		{"integer dtype", edit(replace(qA, safetensors.I32, []int{8, 16})), []string{qA, "I32"}},
		{"B rank differs from A", edit(replace(qB, safetensors.F32, []int{16, 4})), []string{qB, "[16 4]"}},
		{"rank differs from config", edit(func(c []safetensors.Tensor) []safetensors.Tensor {
			return replace(qB, safetensors.F32, []int{16, 4})(replace(qA, safetensors.F32, []int{4, 16})(c))
		}), []string{qA, "rank 4", "rank 8"}},
		{"three dimensions", edit(replace(qA, safetensors.F32, []int{8, 4, 4})), []string{qA, "two dimensions"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeAdapterDir(t, cfg, tc.tensors))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestCheckFindsModulesWithoutTensors(t *testing.T) {
	_, cfg, ts := tinyAdapterFiles(t)
	ts = slices.DeleteFunc(ts, func(t safetensors.Tensor) bool { return strings.Contains(t.Name, "layers.2.self_attn.v_proj") })
	dir := writeAdapterDir(t, cfg, ts)
	if _, err := Load(dir); err != nil {
		t.Fatalf("Load without a base: %v", err)
	}
	_, err := LoadFor(dir, testBase(t, tinyConfig(), 1, nil))
	if err == nil || !strings.Contains(err.Error(), "base_model.model.model.layers.2.self_attn.v_proj.lora_A.weight") {
		t.Errorf("err %v", err)
	}
}

func TestLoadConvertsHalfPrecision(t *testing.T) {
	_, cfg, ts := tinyAdapterFiles(t)
	for _, dtype := range []safetensors.DType{safetensors.F16, safetensors.BF16} {
		conv := make([]safetensors.Tensor, len(ts))
		wantValues := make(map[string][]float32)
		for i, tt := range ts {
			v, err := tt.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			c, err := safetensors.FromFloat32(tt.Name, dtype, tt.Shape, v)
			if err != nil {
				t.Fatal(err)
			}
			conv[i] = c
			if wantValues[tt.Name], err = c.Float32s(); err != nil {
				t.Fatal(err)
			}
		}
		a, err := Load(writeAdapterDir(t, cfg, conv))
		if err != nil {
			t.Fatalf("%s: %v", dtype, err)
		}
		p, _ := a.Pair("model.layers.0.self_attn.v_proj")
		if !sameBits(p.B, wantValues["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"]) {
			t.Errorf("%s: converted values differ", dtype)
		}
	}
}

func TestLoadMissingFiles(t *testing.T) {
	dir, _, _ := tinyAdapterFiles(t)
	if err := os.Remove(filepath.Join(dir, WeightsFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), WeightsFile) {
		t.Errorf("no weights: err %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "adapter_model.bin"), []byte("pickle"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "adapter_model.bin") {
		t.Errorf("pickle weights: err %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), ConfigFile) {
		t.Errorf("empty dir: err %v", err)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, nil)
	c := DefaultConfig()
	c.R, c.Alpha, c.Dropout = 4, 6, 0.1
	c.TargetModules = ModuleRegex(`.*\.(q|k|v|o|down)_proj`)
	c.ExcludeModules = ModuleNames("layers.0.self_attn.k_proj")
	c.UseRSLoRA = true
	c.RankPattern = []RankRule{{"down_proj", 2}}
	c.AlphaPattern = []AlphaRule{{`layers\.1\.self_attn\.o_proj`, 10}}
	c.TaskType = "CAUSAL_LM"
	c.BaseModelNameOrPath = "tiny/llama"
	a := mustNew(t, base, c, 8)
	randomize(a, 9)
	dir := t.TempDir()
	if err := Save(dir, a); err != nil {
		t.Fatal(err)
	}
	b, err := LoadFor(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Config, b.Config) {
		t.Errorf("config changed:\nsaved  %+v\nloaded %+v", a.Config, b.Config)
	}
	if !slices.Equal(a.Modules(), b.Modules()) {
		t.Errorf("modules %q\nloaded  %q", a.Modules(), b.Modules())
	}
	for _, name := range a.Modules() {
		p, _ := a.Pair(name)
		q, _ := b.Pair(name)
		if p.R != q.R || p.In != q.In || p.Out != q.Out || p.Alpha() != q.Alpha() || p.Scaling() != q.Scaling() || !sameBits(p.A, q.A) || !sameBits(p.B, q.B) {
			t.Errorf("%s: pair changed in the round trip", name)
		}
	}
	if p, _ := b.Pair("model.layers.1.mlp.down_proj"); p.R != 2 {
		t.Errorf("down_proj rank %d", p.R)
	}
	if p, _ := b.Pair("model.layers.1.self_attn.o_proj"); p.Scaling() != 10/2.0 {
		t.Errorf("o_proj rsLoRA scaling %v, want 10/√4", p.Scaling())
	}
	if _, ok := b.Pair("model.layers.0.self_attn.k_proj"); ok {
		t.Error("excluded module has a pair")
	}
}

// dirState returns the names and contents of the files in dir.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := make(map[string]string)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			// The hidden link and version directory behind the names.
			s[e.Name()] = ""
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s[e.Name()] = string(data)
	}
	return s
}

func TestFailedSaveKeepsOldAdapter(t *testing.T) {
	dir, _, _ := tinyAdapterFiles(t)
	before := dirState(t, dir)
	if len(before) != 4 || before[ConfigFile] == "" || before[WeightsFile] == "" {
		t.Fatalf("after Save the directory holds %q, want the two files and the hidden link and version behind them", slices.Collect(maps.Keys(before)))
	}

	// A broken adapter is refused before anything is written.
	bad := mustNew(t, testBase(t, tinyConfig(), 1, nil), DefaultConfig(), 3)
	p, _ := bad.Pair("model.layers.2.self_attn.v_proj")
	p.B = p.B[:3]
	if err := Save(dir, bad); err == nil || !strings.Contains(err.Error(), "model.layers.2.self_attn.v_proj") {
		t.Errorf("broken adapter: err %v", err)
	}
	if !reflect.DeepEqual(dirState(t, dir), before) {
		t.Error("a refused Save changed the directory")
	}

	// A write failing midway (here: the second file) leaves both old files
	// and no temporary files.
	boom := errors.New("disk full")
	for failing := range 2 {
		files := []atomicfile.File{
			{Name: WeightsFile, Write: func(w io.Writer) error { _, err := w.Write([]byte("new weights")); return err }},
			{Name: ConfigFile, Write: func(w io.Writer) error { _, err := w.Write([]byte("new config")); return err }},
		}
		files[failing].Write = func(w io.Writer) error {
			w.Write([]byte("partial"))
			return boom
		}
		if err := atomicfile.WriteFiles(dir, adapterSet, files, 0o644); !errors.Is(err, boom) {
			t.Errorf("failing file %d: err %v", failing, err)
		}
		if !reflect.DeepEqual(dirState(t, dir), before) {
			t.Errorf("failing file %d: the directory changed", failing)
		}
	}
	if _, err := LoadFor(dir, testBase(t, tinyConfig(), 1, nil)); err != nil {
		t.Errorf("old adapter no longer loads: %v", err)
	}
}
