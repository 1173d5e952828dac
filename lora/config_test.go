package lora

import (
	"encoding/json"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const fixtureDir = "testdata/peft-smollm-135m-lora"

func readFixtureConfig(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(fixtureDir + "/" + ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseConfigPEFTFile(t *testing.T) {
	c, err := ParseConfig(readFixtureConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	// Values as written in the fixture's adapter_config.json (PEFT 0.12.0).
	if c.R != 16 || c.Alpha != 32 || c.Dropout != 0.05 || c.Bias != "none" {
		t.Errorf("r %d alpha %v dropout %v bias %q, want 16 32 0.05 none", c.R, c.Alpha, c.Dropout, c.Bias)
	}
	if !reflect.DeepEqual(c.TargetModules, ModuleNames("v_proj", "q_proj")) {
		t.Errorf("target_modules %+v", c.TargetModules)
	}
	if c.InitLoRAWeights != InitKaiming || c.UseRSLoRA || c.UseDoRA || !c.InferenceMode || c.FanInFanOut {
		t.Errorf("flags: init %q rslora %v dora %v inference %v fan_in_fan_out %v", c.InitLoRAWeights, c.UseRSLoRA, c.UseDoRA, c.InferenceMode, c.FanInFanOut)
	}
	if c.BaseModelNameOrPath != "HuggingFaceTB/SmolLM-135M-Instruct" || c.TaskType != "" || c.Revision != "" {
		t.Errorf("base %q task %q revision %q", c.BaseModelNameOrPath, c.TaskType, c.Revision)
	}
	if c.LayersToTransform != nil || c.LayersPattern != nil || c.ModulesToSave != nil || c.RankPattern != nil || c.AlphaPattern != nil {
		t.Errorf("optional fields should be unset: %+v", c)
	}
	var unknown []string
	for k := range c.Unrecognized {
		unknown = append(unknown, k)
	}
	slices.Sort(unknown)
	want := []string{"auto_mapping", "layer_replication", "loftq_config", "megatron_config", "megatron_core"}
	if !slices.Equal(unknown, want) {
		t.Errorf("unrecognized keys %q, want %q", unknown, want)
	}
}

func TestConfigMarshalKeepsEveryPEFTKey(t *testing.T) {
	data := readFixtureConfig(t)
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var orig, again map[string]any
	if err := json.Unmarshal(data, &orig); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &again); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(orig, again) {
		t.Errorf("re-encoded config differs:\norig  %v\nagain %v", orig, again)
	}
}

func TestConfigUnknownKeysIgnoredAndKept(t *testing.T) {
	data := []byte(`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"],
		"some_future_option": {"nested": [1, 2]}, "use_magic": true, "layer_replication": null, "lora_bias": false}`)
	c, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if c.R != 4 || c.Alpha != 8 {
		t.Errorf("r %d alpha %v", c.R, c.Alpha)
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m["some_future_option"], map[string]any{"nested": []any{1.0, 2.0}}) || m["use_magic"] != true {
		t.Errorf("unknown keys not written back: %s", out)
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`{"peft_type": "LORA"}`))
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if c.R != d.R || c.Alpha != d.Alpha || c.Dropout != 0 || c.Bias != "none" || c.InitLoRAWeights != InitKaiming {
		t.Errorf("defaults: %+v", c)
	}
	// PEFT's LoraConfig defaults (formats.md): r 8, lora_alpha 8, dropout 0, bias "none".
	if d.R != 8 || d.Alpha != 8 || d.Bias != "none" {
		t.Errorf("DefaultConfig: %+v", d)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		json, want string
	}{
		{`{"r": 8}`, "peft_type"},
		{`{"peft_type": "IA3"}`, "peft_type"},
		{`[1, 2]`, "object"},
		{`{"peft_type": "LORA",`, "invalid JSON"},
		{`{"peft_type": "LORA", "r": "16"}`, `"r"`},
		{`{"peft_type": "LORA", "r": 16.5}`, `"r"`},
		{`{"peft_type": "LORA", "r": 0}`, "r must be a positive"},
		{`{"peft_type": "LORA", "lora_alpha": null}`, `"lora_alpha"`},
		{`{"peft_type": "LORA", "lora_alpha": 0}`, "lora_alpha"},
		{`{"peft_type": "LORA", "lora_dropout": 1}`, "lora_dropout"},
		{`{"peft_type": "LORA", "bias": "some"}`, "bias"},
		{`{"peft_type": "LORA", "use_dora": true}`, "DoRA is not supported"},
		{`{"peft_type": "LORA", "modules_to_save": ["lm_head"]}`, "modules_to_save"},
		{`{"peft_type": "LORA", "layer_replication": [[0, 4], [2, 5]]}`, `"layer_replication"`},
		{`{"peft_type": "LORA", "lora_bias": true}`, `"lora_bias"`},
		{`{"peft_type": "LORA", "target_modules": "q_proj("}`, "target_modules regular expression"},
		{`{"peft_type": "LORA", "target_modules": 5}`, `"target_modules"`},
		{`{"peft_type": "LORA", "target_modules": []}`, "empty list"},
		{`{"peft_type": "LORA", "target_modules": ".*q_proj", "layers_to_transform": [0]}`, "layers_to_transform"},
		{`{"peft_type": "LORA", "layers_to_transform": [-1]}`, "negative"},
		{`{"peft_type": "LORA", "layers_pattern": "layers"}`, "layers_pattern needs"},
		{`{"peft_type": "LORA", "init_lora_weights": "pissa_niter_4"}`, "rewrites the base weights"},
		{`{"peft_type": "LORA", "init_lora_weights": 3}`, `"init_lora_weights"`},
		{`{"peft_type": "LORA", "rank_pattern": {"q_proj": 0}}`, "rank_pattern"},
		{`{"peft_type": "LORA", "rank_pattern": {"(?<=x)q": 4}}`, "rank_pattern key"},
		{`{"peft_type": "LORA", "rank_pattern": [1]}`, `"rank_pattern"`},
		{`{"peft_type": "LORA", "alpha_pattern": {"q_proj": "x"}}`, `"alpha_pattern"`},
	} {
		_, err := ParseConfig([]byte(tc.json))
		if err == nil {
			t.Errorf("%s: no error", tc.json)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", tc.json, err, tc.want)
		}
	}
}

func TestInitJSONValues(t *testing.T) {
	for _, tc := range []struct {
		json string
		want Init
	}{
		{`true`, InitKaiming},
		{`false`, InitLinearDefault},
		{`null`, InitLinearDefault},
		{`"gaussian"`, InitGaussian},
		{`"eva"`, Init("eva")},
	} {
		c, err := ParseConfig([]byte(`{"peft_type": "LORA", "init_lora_weights": ` + tc.json + `}`))
		if err != nil {
			t.Fatalf("%s: %v", tc.json, err)
		}
		if c.InitLoRAWeights != tc.want {
			t.Errorf("%s: got %q, want %q", tc.json, c.InitLoRAWeights, tc.want)
		}
	}
	for init, want := range map[Init]string{InitKaiming: "true", InitLinearDefault: "false", InitGaussian: `"gaussian"`, "": "true"} {
		c := DefaultConfig()
		c.InitLoRAWeights = init
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatal(err)
		}
		if string(m["init_lora_weights"]) != want {
			t.Errorf("%q encodes as %s, want %s", init, m["init_lora_weights"], want)
		}
	}
}

// selected returns the module names cfg selects in the tiny base.
func selected(t *testing.T, cfg Config) []string {
	t.Helper()
	lins, err := cfg.Select(testBase(t, tinyConfig(), 1, map[string]bool{}))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range lins {
		names = append(names, l.Name)
	}
	return names
}

func TestTargetModuleMatching(t *testing.T) {
	withTargets := func(m Modules) Config {
		c := DefaultConfig()
		c.TargetModules = m
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"default is q and v", DefaultConfig(), []string{
			"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
			"model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj",
			"model.layers.2.self_attn.q_proj", "model.layers.2.self_attn.v_proj"}},
		{"suffix", withTargets(ModuleNames("down_proj")), []string{
			"model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj", "model.layers.2.mlp.down_proj"}},
		{"dotted suffix", withTargets(ModuleNames("1.mlp.up_proj")), []string{"model.layers.1.mlp.up_proj"}},
		{"exact name", withTargets(ModuleNames("model.layers.2.self_attn.o_proj")), []string{"model.layers.2.self_attn.o_proj"}},
		{"head by name", withTargets(ModuleNames("lm_head")), []string{"lm_head"}},
		{"regex is a full match", withTargets(ModuleRegex(`.*\.layers\.[02]\.mlp\.(gate|up)_proj`)), []string{
			"model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj",
			"model.layers.2.mlp.gate_proj", "model.layers.2.mlp.up_proj"}},
		{"layers_to_transform", func() Config {
			c := withTargets(ModuleNames("q_proj", "k_proj"))
			c.LayersToTransform = []int{0, 2}
			return c
		}(), []string{
			"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
			"model.layers.2.self_attn.q_proj", "model.layers.2.self_attn.k_proj"}},
		{"layers_pattern", func() Config {
			c := withTargets(ModuleNames("v_proj"))
			c.LayersToTransform = []int{1}
			c.LayersPattern = []string{"layers"}
			return c
		}(), []string{"model.layers.1.self_attn.v_proj"}},
		{"exclude list", func() Config {
			c := withTargets(ModuleNames("q_proj"))
			c.ExcludeModules = ModuleNames("layers.1.self_attn.q_proj")
			return c
		}(), []string{"model.layers.0.self_attn.q_proj", "model.layers.2.self_attn.q_proj"}},
		{"exclude regex", func() Config {
			c := withTargets(ModuleNames("o_proj"))
			c.ExcludeModules = ModuleRegex(`.*layers\.[01]\..*`)
			return c
		}(), []string{"model.layers.2.self_attn.o_proj"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := selected(t, tc.cfg); !slices.Equal(got, tc.want) {
				t.Errorf("selected %q\nwant     %q", got, tc.want)
			}
		})
	}
}

func TestAllLinear(t *testing.T) {
	c := DefaultConfig()
	c.TargetModules = ModuleRegex(AllLinear)
	got := selected(t, c)
	if len(got) != 3*7 {
		t.Fatalf("all-linear selected %d modules, want 21: %q", len(got), got)
	}
	if slices.Contains(got, "lm_head") {
		t.Error("all-linear selected the output head")
	}
	// With layers_to_transform, all-linear behaves as the list of leaf names.
	c.LayersToTransform = []int{1}
	if got := selected(t, c); len(got) != 7 || !strings.HasPrefix(got[0], "model.layers.1.") || !strings.HasPrefix(got[6], "model.layers.1.") {
		t.Errorf("all-linear on layer 1: %q", got)
	}
}

func TestNoMatchIsAnError(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, map[string]bool{})
	for _, m := range []Modules{
		ModuleNames("proj"),     // a suffix must follow a dot
		ModuleNames("_proj"),    // likewise
		ModuleRegex("q_proj"),   // a regex must match the whole name
		ModuleNames("qkv_proj"), // not a LLaMA module
	} {
		c := DefaultConfig()
		c.TargetModules = m
		if _, err := New(base, c, 1); err == nil || !strings.Contains(err.Error(), "matches no linear layer") {
			t.Errorf("%+v: err %v", m, err)
		}
	}
}

func TestRankAndAlphaPatterns(t *testing.T) {
	c := DefaultConfig()
	c.R, c.Alpha = 8, 16
	c.TargetModules = ModuleNames("q_proj", "v_proj", "o_proj")
	// First match wins, in order: layer 0's q_proj gets 2, the other q_projs 4.
	c.RankPattern = []RankRule{{`model\.layers\.0\.self_attn\.q_proj`, 2}, {"q_proj", 4}, {"proj", 99}}
	c.AlphaPattern = []AlphaRule{{"v_proj", 64}, {`layers\.[12]\.self_attn\.o_proj`, 3}}
	for _, tc := range []struct {
		module string
		r      int
		alpha  float64
	}{
		{"model.layers.0.self_attn.q_proj", 2, 16},
		{"model.layers.1.self_attn.q_proj", 4, 16},
		{"model.layers.2.self_attn.v_proj", 8, 64}, // "proj" is not a whole name component
		{"model.layers.0.self_attn.o_proj", 8, 16},
		{"model.layers.1.self_attn.o_proj", 8, 3},
	} {
		r, alpha, s, err := c.RankAlphaScaling(tc.module)
		if err != nil {
			t.Fatal(err)
		}
		if r != tc.r || alpha != tc.alpha || s != alpha/float64(r) {
			t.Errorf("%s: r %d alpha %v scaling %v, want %d %v %v", tc.module, r, alpha, s, tc.r, tc.alpha, tc.alpha/float64(tc.r))
		}
	}
	a := mustNew(t, testBase(t, tinyConfig(), 1, map[string]bool{}), c, 7)
	p, _ := a.Pair("model.layers.0.self_attn.q_proj")
	if p.R != 2 || len(p.A) != 2*16 || len(p.B) != 16*2 {
		t.Errorf("layer 0 q_proj pair: r %d, |A| %d, |B| %d", p.R, len(p.A), len(p.B))
	}
	p, _ = a.Pair("model.layers.1.self_attn.v_proj")
	if p.R != 8 || p.Alpha() != 64 || p.Scaling() != 8 {
		t.Errorf("layer 1 v_proj pair: r %d alpha %v scaling %v", p.R, p.Alpha(), p.Scaling())
	}
}

func TestRankPatternOrderSurvivesJSON(t *testing.T) {
	// Keys deliberately out of sorted order: the first listed must win.
	c, err := ParseConfig([]byte(`{"peft_type": "LORA", "rank_pattern": {"q_proj": 4, "layers\\.0\\.self_attn\\.q_proj": 2}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []RankRule{{"q_proj", 4}, {`layers\.0\.self_attn\.q_proj`, 2}}
	if !reflect.DeepEqual(c.RankPattern, want) {
		t.Fatalf("rank_pattern %+v, want %+v", c.RankPattern, want)
	}
	if r, _, _, _ := c.RankAlphaScaling("model.layers.0.self_attn.q_proj"); r != 4 {
		t.Errorf("rank %d, want 4 (first match)", r)
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.RankPattern, want) {
		t.Errorf("after a round trip rank_pattern %+v", back.RankPattern)
	}
}

func TestRSLoRAScaling(t *testing.T) {
	c := DefaultConfig()
	c.R, c.Alpha = 16, 32
	_, _, plain, _ := c.RankAlphaScaling("model.layers.0.self_attn.q_proj")
	c.UseRSLoRA = true
	_, _, rs, _ := c.RankAlphaScaling("model.layers.0.self_attn.q_proj")
	// alpha/r = 2; alpha/√r = 32/4 = 8.
	if plain != 2 || rs != 8 {
		t.Errorf("scaling %v, rsLoRA %v; want 2 and 8", plain, rs)
	}
	c.R = 10
	if _, _, rs, _ := c.RankAlphaScaling("x"); math.Abs(rs-32/math.Sqrt(10)) > 1e-15 {
		t.Errorf("rsLoRA scaling for r 10: %v", rs)
	}
}

func TestDoRARefused(t *testing.T) {
	c := DefaultConfig()
	c.UseDoRA = true
	if _, err := New(testBase(t, tinyConfig(), 1, nil), c, 1); err == nil || !strings.Contains(err.Error(), "DoRA is not supported") {
		t.Errorf("err %v", err)
	}
}
