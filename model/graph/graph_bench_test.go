package graph

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/golora/golora/internal/blas"
	"github.com/golora/golora/model"
)

// The benchmark model has stories15M's shape (llama2.c's 15M TinyStories
// model: shared classifier, 6 layers of width 288) with random weights, run on
// batches of 4 × 128 tokens, the setting of PyTorch's figures in the project's
// anchors (about 3,500 tokens/s forward, 2 threads).
var graphBenchConfig = model.Config{
	Dim: 288, HiddenDim: 768, Layers: 6, Heads: 6, KVHeads: 6, HeadDim: 48,
	VocabSize: 32000, MaxSeqLen: 256, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true,
}

const graphBenchBatch, graphBenchSeqLen = 4, 128

// graphBenchVariants are the weight representations compared side by side:
// dense float32; QLoRA's NF4 on every block linear (the output head dense, as
// bitsandbytes leaves it); and NF4 on the output head as well.
var graphBenchVariants = []struct {
	name  string
	build func(b *testing.B) *model.Weights
}{
	{"dense", func(b *testing.B) *model.Weights { return graphBenchWeights(b, false, false) }},
	{"nf4", func(b *testing.B) *model.Weights { return graphBenchWeights(b, true, false) }},
	{"nf4+head", func(b *testing.B) *model.Weights { return graphBenchWeights(b, true, true) }},
}

var (
	graphBenchOnce  sync.Once
	graphBenchDense *model.Weights
)

// graphBenchWeights returns the random model (fixed seed), with the block
// linears and optionally the output head quantized to NF4. Quantized copies
// share the dense model's embedding and norms.
func graphBenchWeights(b *testing.B, blocks, head bool) *model.Weights {
	graphBenchOnce.Do(func() {
		graphBenchDense = graphSynthetic(graphBenchConfig, 2024, func(v float32) float32 { return v })
	})
	if !blocks && !head {
		return graphBenchDense
	}
	w := *graphBenchDense
	w.Layers = make([]model.Layer, len(graphBenchDense.Layers))
	for l, layer := range graphBenchDense.Layers {
		for _, p := range []**model.Linear{&layer.Q, &layer.K, &layer.V, &layer.O, &layer.Gate, &layer.Up, &layer.Down} {
			c := **p
			*p = &c
			graphQuantizeLinear(b, *p)
		}
		w.Layers[l] = layer
	}
	if head {
		c := *w.Output
		w.Output = &c
		graphQuantizeLinear(b, w.Output)
		w.Config.TiedOutput = false
	}
	return &w
}

func BenchmarkGraphForward(b *testing.B) { graphBenchmark(b, false) }

// BenchmarkGraphForwardBackward differentiates with respect to the embedded
// input, so the backward pass runs through every layer as LoRA training's
// does, without any adapter.
func BenchmarkGraphForwardBackward(b *testing.B) { graphBenchmark(b, true) }

func graphBenchmark(b *testing.B, backward bool) {
	rng := rand.New(rand.NewPCG(1, 1))
	n := graphBenchBatch * graphBenchSeqLen
	tokens := graphRandomTokens(rng, n, graphBenchConfig.VocabSize)
	targets := graphTargets(tokens, graphBenchSeqLen)
	for _, v := range graphBenchVariants {
		b.Run(blas.Name()+"/"+v.name, func(b *testing.B) {
			gr, err := New(v.build(b), Options{Batch: graphBenchBatch, SeqLen: graphBenchSeqLen})
			if err != nil {
				b.Fatal(err)
			}
			defer gr.Close()
			run := gr.Forward
			if backward {
				if _, err := gr.Differentiate(gr.Input); err != nil {
					b.Fatal(err)
				}
				run = gr.ForwardBackward
			}
			if err := gr.SetBatch(tokens, targets); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			// The first run compiles the machine.
			if _, err := run(ctx); err != nil {
				b.Fatal(err)
			}
			cpu0, cpuKnown := graphCPUTime()
			for b.Loop() {
				if _, err := run(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "tokens/s")
			// CPU time per run, all threads: on a shared machine, wall time
			// also counts waiting for a core, CPU time much less so.
			if cpu1, ok := graphCPUTime(); ok && cpuKnown {
				b.ReportMetric(float64((cpu1-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
			}
		})
	}
}
