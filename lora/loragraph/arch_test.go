package loragraph

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/graph"
)

// archBase loads a tiny checkpoint of ../../model/testdata/arch (see its
// README: random weights, one per architecture).
func archBase(t testing.TB, name string) *model.Weights {
	t.Helper()
	base, err := model.Load(context.Background(), filepath.Join("..", "..", "model", "testdata", "arch", name), model.LoadOptions{WeightsOnly: true})
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
	for _, name := range []string{"llama3", "qwen2", "qwen3", "mistral", "mistral_window", "phi3", "phi4_longrope"} {
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
					cfg.TargetModules = lora.ModuleNames("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
				}
				if w.Config.Arch == "phi3" {
					cfg.TargetModules = lora.ModuleNames("o_proj", "down_proj", "lm_head")
					if w.Config.TiedOutput {
						cfg.TargetModules = lora.ModuleNames("o_proj", "down_proj")
					}
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

// TestMergedDenseKeepsArchitecture: merging an adapter into an NF4 Qwen2 or
// Qwen3 base keeps the frozen biases and q/k norms, so the merged model
// gives the logits of the base with the adapter applied.
func TestMergedDenseKeepsArchitecture(t *testing.T) {
	for _, name := range []string{"qwen2", "qwen3"} {
		t.Run(name, func(t *testing.T) {
			w := archBase(t, name)
			quantizeNF4(t, w)
			cfg := lora.DefaultConfig()
			cfg.TargetModules = lora.ModuleNames("q_proj", "k_proj", "v_proj", "down_proj")
			a := mustNew(t, w, cfg, 5)
			randomize(a, 6)
			merged, err := lora.MergedDense(w, a)
			if err != nil {
				t.Fatal(err)
			}
			tokens := []int{3, 9, 27, 1, 44, 60}
			ga, err := New(a)
			if err != nil {
				t.Fatal(err)
			}
			want := archGraphLogits(t, w, ga, tokens)
			got := archGraphLogits(t, merged, nil, tokens)
			var worst float64
			for i := range want {
				worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
			}
			t.Logf("max |merged − adapted| %.2g", worst)
			if worst > 1e-4 {
				t.Errorf("merged logits differ from the adapted base's by %g", worst)
			}
		})
	}
}

func archGraphLogits(t *testing.T, w *model.Weights, ga *Adapter, tokens []int) []float32 {
	t.Helper()
	opts := graph.Options{Batch: 1, SeqLen: len(tokens)}
	if ga != nil {
		opts.Adapter = ga
	}
	gr, err := graph.New(w, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	targets := make([]int, len(tokens))
	for i := range targets {
		targets[i] = graph.IgnoreTarget
	}
	if err := gr.SetBatch(tokens, targets); err != nil {
		t.Fatal(err)
	}
	if _, err := gr.Forward(context.Background()); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), gr.Logits.Value().Data().([]float32)...)
}
