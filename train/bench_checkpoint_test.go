package train

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
)

// benchModelEnv names a Hugging Face model directory for
// BenchmarkQLoRATrainCheckpoint, e.g. a Llama-3.2-1B-shaped checkpoint from
// `go run ./internal/cmd/genllama -shape 1b -out DIR`.
const benchModelEnv = "GOLORA_BENCH_MODEL"

// BenchmarkQLoRATrainCheckpoint measures QLoRA training throughput on the
// checkpoint named by $GOLORA_BENCH_MODEL (loaded with NF4 block linears,
// as `golora train` does), in the setting of BenchmarkQLoRATrain. It is
// skipped without the variable: a 1B-parameter model needs several GB and
// minutes. Run it with -cpuprofile or -memprofile to see where a step goes.
func BenchmarkQLoRATrainCheckpoint(b *testing.B) {
	dir := os.Getenv(benchModelEnv)
	if dir == "" {
		b.Skipf("set %s to a Hugging Face model directory", benchModelEnv)
	}
	ctx := context.Background()
	base, err := model.Load(ctx, dir, model.LoadOptions{WeightsOnly: true, Quantizer: nf4.Quantizer(nf4.Options{})})
	if err != nil {
		b.Fatal(err)
	}
	w := base.Weights
	adapter := newAdapter(b, w, allLinear(8, 16, 0), 1)
	rng := rand.New(rand.NewPCG(5, 5))
	data := make([]Example, 8)
	for i := range data {
		ex := Example{Tokens: make([]int, benchSeqLen+1), Loss: make([]bool, benchSeqLen+1)}
		for j := range ex.Tokens {
			ex.Tokens[j], ex.Loss[j] = rng.IntN(w.Config.VocabSize), true
		}
		data[i] = ex
	}
	cfg := DefaultConfig()
	cfg.Steps, cfg.BatchSize, cfg.SeqLen = 1<<30, benchBatch, benchSeqLen
	cfg.LR, cfg.WarmupRatio, cfg.WeightDecay, cfg.MaxGradNorm = 1e-3, 0, 0.01, 0
	tr, err := New(w, adapter, data, nil, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	// The first step compiles the graph's machine and fills its buffers.
	if _, err := tr.Step(ctx); err != nil {
		b.Fatal(err)
	}
	cpu0, cpuKnown := cpuTime()
	for b.Loop() {
		if _, err := tr.Step(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch*benchSeqLen)/b.Elapsed().Seconds(), "tokens/s")
	if cpu1, ok := cpuTime(); ok && cpuKnown {
		b.ReportMetric(float64((cpu1-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
	}
	if rss, ok := peakRSSMiB(); ok {
		b.ReportMetric(rss, "peak-RSS-MiB")
	}
}
