package train

import (
	"context"
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
	tr := benchTrainerOn(b, base.Weights, 8, 1<<30)
	defer tr.Close()
	benchSteps(b, tr)
	if rss, ok := peakRSSMiB(); ok {
		b.ReportMetric(rss, "peak-RSS-MiB")
	}
}
