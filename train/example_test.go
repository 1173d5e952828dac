package train_test

import (
	"context"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/train"
)

// randomModel returns a small LLaMA with random weights, in place of a
// loaded checkpoint.
func randomModel(c model.Config, seed uint64) *model.Weights {
	rng := rand.New(rand.NewPCG(seed, 0))
	randn := func(n int, std, mean float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(mean + std*rng.NormFloat64())
		}
		return v
	}
	fill := func(lin *model.Linear) { lin.Dense = randn(lin.Out*lin.In, 1/math.Sqrt(float64(lin.In)), 0) }
	w := model.NewWeights(c)
	w.Embedding, w.Norm = randn(c.VocabSize*c.Dim, 1, 0), randn(c.Dim, 0, 1)
	for l := range w.Layers {
		layer := &w.Layers[l]
		layer.AttnNorm, layer.MLPNorm = randn(c.Dim, 0, 1), randn(c.Dim, 0, 1)
		for _, lin := range []*model.Linear{layer.Q, layer.K, layer.V, layer.O, layer.Gate, layer.Up, layer.Down} {
			fill(lin)
		}
	}
	fill(w.Output)
	return w
}

// Example trains a QLoRA adapter: the base's block linears are quantized to
// NF4, an adapter goes on every one of them, and 30 steps teach it to count
// (each token is the previous one plus one, modulo the vocabulary).
func Example() {
	base := randomModel(model.Config{Dim: 32, HiddenDim: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8,
		VocabSize: 20, MaxSeqLen: 32, NormEps: 1e-5, RopeTheta: 10000}, 1)
	err := base.Quantize(context.Background(), nf4.Quantizer(nf4.Options{}))
	if err != nil {
		log.Fatal(err)
	}

	loraCfg := lora.DefaultConfig()
	loraCfg.R, loraCfg.Alpha = 4, 8
	loraCfg.TargetModules = lora.ModuleRegex(lora.AllLinear)
	adapter, err := lora.New(base, loraCfg, 2)
	if err != nil {
		log.Fatal(err)
	}

	counting := func(start int) train.Example {
		ex := train.Example{}
		for i := range 17 {
			ex.Tokens = append(ex.Tokens, (start+i)%20)
			ex.Loss = append(ex.Loss, i > 0)
		}
		return ex
	}
	var trainData, evalData []train.Example
	for s := range 20 {
		if s%5 == 0 {
			evalData = append(evalData, counting(s))
		} else {
			trainData = append(trainData, counting(s))
		}
	}

	dir, err := os.MkdirTemp("", "qlora")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := train.DefaultConfig() // QLoRA's optimizer settings
	cfg.Steps, cfg.BatchSize, cfg.SeqLen = 30, 4, 16
	cfg.LR = 1e-2 // a tiny model and a few steps need a larger rate
	cfg.OutDir = dir

	var first float64
	cfg.OnStep = func(m train.Metric) {
		if m.Step == 1 {
			first = m.Loss
		}
	}
	res, err := train.Train(context.Background(), base, adapter, trainData, evalData, cfg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("trainable parameters:", adapter.NumParams())
	fmt.Println("steps:", res.Steps, "tokens:", res.Tokens)
	fmt.Println("training loss fell below half:", res.TrainLoss < first/2)
	fmt.Println("held-out perplexity below 2 (chance is 20):", res.EvalPerplexity < 2)
	entries, err := os.ReadDir(dir)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		// Hidden entries hold the adapter's current version (lora.Save).
		if !strings.HasPrefix(e.Name(), ".") {
			fmt.Println(e.Name())
		}
	}
	// Output:
	// trainable parameters: 4096
	// steps: 30 tokens: 1920
	// training loss fell below half: true
	// held-out perplexity below 2 (chance is 20): true
	// adapter_config.json
	// adapter_model.safetensors
	// loss.png
	// metrics.jsonl
}
