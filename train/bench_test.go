package train

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/golora/golora/internal/blas"
	"github.com/golora/golora/model"
	"github.com/golora/golora/quant"
)

// benchConfig is stories15M's shape (llama2.c's 15M TinyStories model: 6
// layers of width 288, 6 heads, a 32,000-token vocabulary shared with the
// output head), with random weights.
var benchConfig = model.Config{
	Dim: 288, HiddenDim: 768, Layers: 6, Heads: 6, KVHeads: 6, HeadDim: 48,
	VocabSize: 32000, MaxSeqLen: 256, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true,
}

// The setting of the PyTorch figures in the project's anchors
// (/work/shared/bench/torch_lora_bench.py, mode "all"): batches of 4 × 128
// tokens, LoRA r 8, alpha 16, no dropout on every block linear, AdamW with
// weight decay 0.01 and no clipping.
const benchBatch, benchSeqLen = 4, 128

// benchRSSEnv names the case a child process measures (see
// TestTrainPeakRSSChild).
const benchRSSEnv = "GOLORA_TRAIN_RSS_CASE"

// benchRSSSteps is the number of training steps a child runs before it reads
// its peak resident set.
const benchRSSSteps = 3

// benchTrainer builds the base for a case of BenchmarkQLoRATrain (NF4
// block linears, each quantized as soon as it is generated, or dense
// float32; "nf4-bf16" also holds the tied embedding and head in BF16, as a
// QLoRA load of a BF16 checkpoint does) and a Trainer on it
// (benchTrainerOn).
func benchTrainer(tb testing.TB, name string, steps int) *Trainer {
	base := syntheticBase(tb, benchConfig, 2024, name != "dense")
	if name == "nf4-bf16" {
		c := base.Config
		emb, err := quant.ToBF16(base.Embedding, c.VocabSize, c.Dim)
		if err != nil {
			tb.Fatal(err)
		}
		base.Embedding, base.EmbeddingMatrix = nil, emb
		base.Output.Dense, base.Output.Quantized = nil, emb
	}
	return benchTrainerOn(tb, base, 32, steps)
}

// benchTrainerOn builds an all-linear adapter on base and a Trainer of it in
// the anchors' setting, over n examples of random tokens.
func benchTrainerOn(tb testing.TB, base *model.Weights, n, steps int) *Trainer {
	adapter := newAdapter(tb, base, allLinear(8, 16, 0), 1)
	rng := rand.New(rand.NewPCG(5, 5))
	data := make([]Example, n)
	for i := range data {
		ex := Example{Tokens: make([]int, benchSeqLen+1), Loss: make([]bool, benchSeqLen+1)}
		for j := range ex.Tokens {
			ex.Tokens[j], ex.Loss[j] = rng.IntN(base.Config.VocabSize), true
		}
		data[i] = ex
	}
	cfg := DefaultConfig()
	cfg.Steps, cfg.BatchSize, cfg.SeqLen = steps, benchBatch, benchSeqLen
	cfg.LR, cfg.WarmupRatio, cfg.WeightDecay, cfg.MaxGradNorm = 1e-3, 0, 0.01, 0
	tr, err := New(base, adapter, data, nil, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return tr
}

// benchSteps runs a first step, which compiles the graph's machine and fills
// its buffers, then times b.Loop's steps and reports tokens/s and the CPU
// time per step: next to the wall time, it shows whether the run had both
// cores or shared them with other processes.
func benchSteps(b *testing.B, tr *Trainer) {
	ctx := context.Background()
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
}

// BenchmarkQLoRATrain measures training throughput on stories15M's shape with
// an NF4 (QLoRA) base with a float32 or a BF16 embedding and head, and a
// dense float32 (LoRA) base, and the peak resident set of each, measured in
// a child process per case so that they do not share a heap.
func BenchmarkQLoRATrain(b *testing.B) {
	for _, name := range []string{"nf4", "nf4-bf16", "dense"} {
		b.Run(blas.Name()+"/"+name, func(b *testing.B) {
			tr := benchTrainer(b, name, math.MaxInt32)
			defer tr.Close()
			benchSteps(b, tr)
			b.StopTimer()
			rss, err := childPeakRSS(name)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(rss, "peak-RSS-MiB")
		})
	}
}

// childPeakRSS runs TestTrainPeakRSSChild for one case in a new process of
// this test binary and returns the peak resident set it reports, in MiB.
func childPeakRSS(name string) (float64, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestTrainPeakRSSChild$", "-test.v")
	cmd.Env = append(os.Environ(), benchRSSEnv+"="+name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("child for %s: %w\n%s", name, err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "VmHWM_kB="); ok {
			kb, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("child for %s printed no VmHWM:\n%s", name, out)
}

// TestTrainPeakRSSChild is the child process of BenchmarkQLoRATrain's
// memory measurement: it builds one case, trains a few steps and prints the
// process's peak resident set (VmHWM). It is skipped unless the benchmark
// started it.
func TestTrainPeakRSSChild(t *testing.T) {
	name := os.Getenv(benchRSSEnv)
	if name == "" {
		t.Skip("run by BenchmarkQLoRATrain in a child process")
	}
	tr := benchTrainer(t, name, benchRSSSteps)
	defer tr.Close()
	for range benchRSSSteps {
		if _, err := tr.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	rss, ok := peakRSSMiB()
	if !ok {
		t.Skip("no VmHWM in /proc/self/status")
	}
	fmt.Printf("VmHWM_kB=%.0f\n", rss*1024)
}

// peakRSSMiB returns the process's peak resident set (VmHWM) in MiB, and
// false where /proc/self/status does not report it.
func peakRSSMiB() (float64, bool) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err == nil
		}
	}
	return 0, false
}
