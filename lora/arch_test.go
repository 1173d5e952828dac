package lora

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
)

// archBase loads a tiny checkpoint of ../model/testdata/arch (see its
// README: random weights, one per architecture).
func archBase(t testing.TB, name string) *model.Weights {
	t.Helper()
	base, err := model.Load(context.Background(), filepath.Join("..", "model", "testdata", "arch", name), model.LoadOptions{WeightsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return base.Weights
}

// TestPhi3FusedModulesRefused: adapters on the parts of Phi-3's fused
// projections, new or loaded, are refused with a message naming the fused
// module.
func TestPhi3FusedModulesRefused(t *testing.T) {
	w := archBase(t, "phi3")
	for _, target := range []string{"q_proj", "gate_proj", "all-linear"} {
		cfg := DefaultConfig()
		if target == "all-linear" {
			cfg.TargetModules = ModuleRegex(AllLinear)
		} else {
			cfg.TargetModules = ModuleNames(target)
		}
		_, err := New(w, cfg, 1)
		if err == nil || !strings.Contains(err.Error(), "adapters on fused modules are not supported") {
			t.Errorf("target %s on phi3: err %v, want the fused-module refusal", target, err)
		}
	}
}

// TestPhi3FusedPEFTAdapter: a PEFT adapter on Phi-3's fused qkv_proj and
// gate_up_proj (one A, B stacking the parts' rows) loads onto a phi3 base,
// and generation with it gives the logits of the base with W + scaling·B·A
// added to the fused weights by hand; it is refused for training and saving.
func TestPhi3FusedPEFTAdapter(t *testing.T) {
	w := archBase(t, "phi3")
	c := w.Config
	q, kv := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	cfg := DefaultConfig()
	cfg.R, cfg.Alpha = 2, 6
	cfg.TargetModules = ModuleNames("qkv_proj", "gate_up_proj")
	fused := &Adapter{Config: cfg, pairs: map[string]*Pair{}}
	rng := rand.New(rand.NewPCG(21, 22))
	for l := range c.Layers {
		for _, m := range []struct {
			name string
			out  int
		}{{"self_attn.qkv_proj", q + 2*kv}, {"mlp.gate_up_proj", 2 * c.HiddenDim}} {
			p := &Pair{
				Module: fmt.Sprintf("model.layers.%d.%s", l, m.name), In: c.Dim, Out: m.out, R: cfg.R,
				A: make([]float32, cfg.R*c.Dim), B: make([]float32, m.out*cfg.R), alpha: cfg.Alpha, scaling: cfg.Alpha / float64(cfg.R),
			}
			for i := range p.A {
				p.A[i] = float32(rng.NormFloat64() * 0.3)
			}
			for i := range p.B {
				p.B[i] = float32(rng.NormFloat64() * 0.3)
			}
			fused.pairs[p.Module] = p
			fused.modules = append(fused.modules, p.Module)
		}
	}
	dir := t.TempDir()
	if err := Save(dir, fused); err != nil {
		t.Fatal(err)
	}
	a, err := LoadFor(dir, w)
	if err != nil {
		t.Fatal(err)
	}

	// The reference: every fused weight plus scaling·B·A, split by rows.
	merged := archBase(t, "phi3")
	for l := range c.Layers {
		layer := &merged.Layers[l]
		for _, m := range []struct {
			name  string
			parts []*model.Linear
		}{{"self_attn.qkv_proj", []*model.Linear{layer.Q, layer.K, layer.V}}, {"mlp.gate_up_proj", []*model.Linear{layer.Gate, layer.Up}}} {
			p := fused.pairs[fmt.Sprintf("model.layers.%d.%s", l, m.name)]
			row := 0
			for _, lin := range m.parts {
				for o := range lin.Out {
					for i := range lin.In {
						var d float64
						for r := range p.R {
							d += float64(p.B[(row+o)*p.R+r]) * float64(p.A[r*p.In+i])
						}
						lin.Dense[o*lin.In+i] += float32(p.scaling * d)
					}
				}
				row += lin.Out
			}
		}
	}
	tokens := []int{1, 17, 42, 5, 63, 0, 29, 8}
	got := archGenerate(t, w, a, tokens)
	want := archGenerate(t, merged, nil, tokens)
	var worst float64
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
	}
	t.Logf("max |adapter − merged by hand| %.2g", worst)
	if worst > 1e-4 {
		t.Errorf("logits with the fused adapter differ from the hand-merged base by %g", worst)
	}
	if err := a.Trainable(); err == nil || !strings.Contains(err.Error(), "cannot be trained") {
		t.Errorf("training a split fused adapter: err %v", err)
	}
	if err := Save(t.TempDir(), a); err == nil || !strings.Contains(err.Error(), "fused modules") {
		t.Errorf("saving a split fused adapter: err %v", err)
	}
}

// archGenerate returns the logits of every position of tokens, fed one by
// one to a Generator on w with adapter a (nil for none).
func archGenerate(t *testing.T, w *model.Weights, a *Adapter, tokens []int) []float32 {
	t.Helper()
	opts := infer.GeneratorOptions{}
	if a != nil {
		opts.Adapter = a
	}
	g, err := infer.NewGenerator(w, opts)
	if err != nil {
		t.Fatal(err)
	}
	var out []float32
	for _, tok := range tokens {
		logits, err := g.Step(tok)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, logits...)
	}
	return out
}
