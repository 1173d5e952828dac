package lora

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golora/golora/model"
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

// TestGraphAdapterGradientArchitectures is TestGraphAdapterGradient on the
// new architectures: the gradients of A and B reach the adapters through
// the q/k/v biases (qwen2), the per-head q/k norms (qwen3), scaled RoPE
// (llama3) and partial RoPE with split fused projections (phi3), dense and
// NF4, and match central differences of the loss (same tolerance and
// reasoning as TestGraphAdapterGradient).
func TestGraphAdapterGradientArchitectures(t *testing.T) {
	for _, name := range []string{"llama3", "qwen2", "qwen3", "mistral", "phi3"} {
		for _, nf4 := range []bool{false, true} {
			label := name + "/dense"
			if nf4 {
				label = name + "/nf4"
			}
			t.Run(label, func(t *testing.T) {
				w := archBase(t, name)
				if nf4 {
					quantizeNF4(t, w)
				}
				cfg := gradCheckConfig()
				if w.Config.TiedOutput {
					cfg.TargetModules = ModuleNames("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
				}
				if w.Config.Arch == "phi3" {
					cfg.TargetModules = ModuleNames("o_proj", "down_proj", "lm_head")
				}
				a, ga := graphAdapterFor(t, w, cfg, 2)
				randomize(a, 3)
				const batch, seqLen = 2, 6
				gr, params := newTrainingGraph(t, w, ga, batch, seqLen)
				tokens, targets := graphTestBatch(4, batch, seqLen, w.Config.VocabSize)
				if err := gr.SetBatch(tokens, targets); err != nil {
					t.Fatal(err)
				}
				if _, err := gr.ForwardBackward(context.Background()); err != nil {
					t.Fatal(err)
				}
				var worst float64
				for _, p := range params {
					worst = math.Max(worst, checkParamGradient(t, gr, p, 6, 1e-2))
				}
				t.Logf("worst relative error %.2g over %d tensors", worst, len(params))
			})
		}
	}
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
