package lora

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/model"
)

// moments returns the mean, variance and largest magnitude of v.
func moments(v []float32) (mean, variance, maxAbs float64) {
	for _, x := range v {
		mean += float64(x)
		maxAbs = max(maxAbs, math.Abs(float64(x)))
	}
	mean /= float64(len(v))
	for _, x := range v {
		d := float64(x) - mean
		variance += d * d
	}
	return mean, variance / float64(len(v)), maxAbs
}

func allZero(v []float32) bool {
	return !slices.ContainsFunc(v, func(x float32) bool { return x != 0 })
}

// initBase has one wide linear per block (in = 1024) so that every pair has
// enough values for tight moment checks.
func initBase(t *testing.T) *model.Weights {
	c := model.Config{Dim: 1024, HiddenDim: 256, Layers: 1, Heads: 8, KVHeads: 8, HeadDim: 128, VocabSize: 10}
	return testBase(t, c, 3, map[string]bool{})
}

func TestInitKaiming(t *testing.T) {
	c := DefaultConfig()
	c.R = 16
	c.TargetModules = ModuleNames("q_proj")
	a := mustNew(t, initBase(t), c, 42)
	p, _ := a.Pair("model.layers.0.self_attn.q_proj")
	// kaiming_uniform(a=√5) on A [16, 1024]: U(−b, b) with b = 1/√1024 = 1/32
	// (formats.md; PEFT layer.py reset_lora_parameters).
	b := 1.0 / 32
	n := float64(len(p.A))
	mean, variance, maxAbs := moments(p.A)
	if maxAbs > b {
		t.Errorf("max |A| %v exceeds bound %v", maxAbs, b)
	}
	if maxAbs < 0.999*b {
		t.Errorf("max |A| %v: %v samples of U(−b, b) should come within 0.1%% of b", maxAbs, n)
	}
	// Mean of n uniforms: σ = b/√(3n) ≈ 1.4e-4; allow 5σ.
	if math.Abs(mean) > 5*b/math.Sqrt(3*n) {
		t.Errorf("mean %v", mean)
	}
	// Variance b²/3; the sample variance's relative σ is ≈ √(0.8/n) ≈ 0.7%, allow 4%.
	if math.Abs(variance/(b*b/3)-1) > 0.04 {
		t.Errorf("variance %v, want %v", variance, b*b/3)
	}
	if !allZero(p.B) {
		t.Error("B is not zero: a fresh adapter must be a no-op")
	}
}

func TestInitGaussian(t *testing.T) {
	c := DefaultConfig()
	c.R = 8
	c.TargetModules = ModuleNames("q_proj")
	c.InitLoRAWeights = InitGaussian
	a := mustNew(t, initBase(t), c, 42)
	p, _ := a.Pair("model.layers.0.self_attn.q_proj")
	// PEFT: nn.init.normal_(A, std=1/r) → σ = 1/8.
	sigma := 1.0 / 8
	n := float64(len(p.A))
	mean, variance, _ := moments(p.A)
	if math.Abs(mean) > 5*sigma/math.Sqrt(n) {
		t.Errorf("mean %v", mean)
	}
	// Relative σ of the sample variance is √(2/n) ≈ 1.6%; allow 6%.
	if math.Abs(variance/(sigma*sigma)-1) > 0.06 {
		t.Errorf("variance %v, want %v", variance, sigma*sigma)
	}
	if !allZero(p.B) {
		t.Error("B is not zero")
	}
}

func TestInitLinearDefault(t *testing.T) {
	c := DefaultConfig()
	c.R = 16
	c.TargetModules = ModuleNames("q_proj")
	c.InitLoRAWeights = InitLinearDefault
	a := mustNew(t, initBase(t), c, 42)
	p, _ := a.Pair("model.layers.0.self_attn.q_proj")
	// nn.Linear's default init: bound 1/√fan_in: 1/32 for A [16, 1024],
	// 1/4 for B [1024, 16].
	for _, tc := range []struct {
		name  string
		v     []float32
		bound float64
	}{{"A", p.A, 1.0 / 32}, {"B", p.B, 1.0 / 4}} {
		_, variance, maxAbs := moments(tc.v)
		if maxAbs > tc.bound || maxAbs < 0.99*tc.bound {
			t.Errorf("%s: max |x| %v, bound %v", tc.name, maxAbs, tc.bound)
		}
		if math.Abs(variance/(tc.bound*tc.bound/3)-1) > 0.05 {
			t.Errorf("%s: variance %v, want %v", tc.name, variance, tc.bound*tc.bound/3)
		}
	}
}

func TestInitDeterministic(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, map[string]bool{})
	c := DefaultConfig()
	c.InitLoRAWeights = InitLinearDefault
	a1 := mustNew(t, base, c, 9)
	a2 := mustNew(t, base, c, 9)
	a3 := mustNew(t, base, c, 10)
	// A module's values do not depend on which other modules are targeted.
	c.TargetModules = ModuleNames("model.layers.1.self_attn.v_proj")
	a4 := mustNew(t, base, c, 9)
	name := "model.layers.1.self_attn.v_proj"
	p1, _ := a1.Pair(name)
	p2, _ := a2.Pair(name)
	p3, _ := a3.Pair(name)
	p4, _ := a4.Pair(name)
	if !slices.Equal(p1.A, p2.A) || !slices.Equal(p1.B, p2.B) {
		t.Error("same seed gave different values")
	}
	if slices.Equal(p1.A, p3.A) {
		t.Error("different seeds gave the same A")
	}
	if !slices.Equal(p1.A, p4.A) || !slices.Equal(p1.B, p4.B) {
		t.Error("values depend on the other targets")
	}
	q1, _ := a1.Pair("model.layers.1.self_attn.q_proj")
	if slices.Equal(q1.A[:16], p1.A[:16]) {
		t.Error("two modules got the same stream")
	}
}

func TestNewResolvesTargets(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, map[string]bool{})
	c := DefaultConfig()
	c.TargetModules = ModuleRegex(AllLinear)
	a := mustNew(t, base, c, 1)
	want := ModuleNames("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
	if !slices.Equal(a.Config.TargetModules.Names, want.Names) || a.Config.TargetModules.Regex != "" {
		t.Errorf("stored targets %+v, want the expanded list", a.Config.TargetModules)
	}
	if got := len(a.Modules()); got != 21 {
		t.Errorf("%d pairs", got)
	}
	// Σ r·(in+out) over the 21 linears of the tiny model, r 8:
	// per block q 16+16, k 16+8, v 16+8, o 16+16, gate 16+40, up 16+40, down 40+16.
	if got, want := a.NumParams(), int64(3*8*(32+24+24+32+56+56+56)); got != want {
		t.Errorf("NumParams %d, want %d", got, want)
	}
	// Default targets are stored as PEFT's default list.
	a = mustNew(t, base, DefaultConfig(), 1)
	if !slices.Equal(a.Config.TargetModules.Names, []string{"q_proj", "v_proj"}) {
		t.Errorf("default targets stored as %+v", a.Config.TargetModules)
	}
}

func TestNewRefusesTiedHeadAndUnknownInit(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, nil)
	base.Config.TiedOutput = true
	c := DefaultConfig()
	c.TargetModules = ModuleNames("lm_head")
	if _, err := New(base, c, 1); err == nil || !strings.Contains(err.Error(), "tied") {
		t.Errorf("tied head: err %v", err)
	}
	c = DefaultConfig()
	c.InitLoRAWeights = "eva"
	if _, err := New(base, c, 1); err == nil || !strings.Contains(err.Error(), "eva") {
		t.Errorf("eva init: err %v", err)
	}
}

func TestCheckNamesModuleAndShapes(t *testing.T) {
	a := mustNew(t, testBase(t, tinyConfig(), 1, nil), DefaultConfig(), 1)
	other := tinyConfig()
	other.Dim = 20
	err := a.Check(testBase(t, other, 1, nil))
	if err == nil {
		t.Fatal("adapter for dim 16 accepted by a dim 20 base")
	}
	for _, want := range []string{`"model.layers.0.self_attn.q_proj"`, "[16 16]", "[16 20]", "[8 16]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	fewer := tinyConfig()
	fewer.Layers = 2
	if err := a.Check(testBase(t, fewer, 1, nil)); err == nil || !strings.Contains(err.Error(), "model.layers.2.self_attn.q_proj") {
		t.Errorf("base without layer 2: err %v", err)
	}
}

func TestAddDeltaIgnoresOtherModules(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, nil)
	a := mustNew(t, base, DefaultConfig(), 1)
	randomize(a, 5)
	y := []float32{1, 2, 3}
	lin := base.Layers[0].K
	if err := a.AddDelta(lin, y, make([]float32, lin.In), 1); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(y, []float32{1, 2, 3}) {
		t.Error("AddDelta changed the output of an untargeted module")
	}
}

func TestAddDeltaDoesNotAllocate(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, nil)
	a := mustNew(t, base, DefaultConfig(), 1)
	lin := base.Layers[0].Q
	x, y := make([]float32, 2*lin.In), make([]float32, 2*lin.Out)
	if n := testing.AllocsPerRun(10, func() { a.AddDelta(lin, y, x, 2) }); n != 0 {
		t.Errorf("AddDelta allocates %v times per call; the generator's hook should not", n)
	}
}

func TestAddDeltaRejectsMismatch(t *testing.T) {
	base := testBase(t, tinyConfig(), 1, nil)
	a := mustNew(t, base, DefaultConfig(), 1)
	lin := *base.Layers[0].Q
	lin.In = 20
	y := make([]float32, 16)
	err := a.AddDelta(&lin, y, make([]float32, 20), 1)
	if err == nil || !strings.Contains(err.Error(), "model.layers.0.self_attn.q_proj") {
		t.Errorf("shape mismatch: got error %v, want one naming the module", err)
	}
	q := base.Layers[0].Q
	if err := a.AddDelta(q, make([]float32, q.Out), make([]float32, q.In-1), 1); err == nil {
		t.Error("short x accepted")
	}
	if !allZero(y) {
		t.Error("y changed although AddDelta failed")
	}
}

func TestNaturalCompare(t *testing.T) {
	names := []string{"model.layers.10.x", "model.layers.2.y", "model.layers.2.x", "lm_head", "model.layers.1.x"}
	slices.SortFunc(names, naturalCompare)
	want := []string{"lm_head", "model.layers.1.x", "model.layers.2.x", "model.layers.2.y", "model.layers.10.x"}
	if !slices.Equal(names, want) {
		t.Errorf("%q", names)
	}
}
