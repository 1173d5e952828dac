package library_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/train"
)

// QLoRA in a few lines: quantize the embedded base to NF4, attach LoRA
// adapters to every linear layer, train them on JSONL stories, then serve
// the adapter from a set of adapters over one base. The README shows this
// code.
func Example() {
	ctx := context.Background()
	outDir, err := os.MkdirTemp("", "golora-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(outDir)

	base, err := model.Default() // or model.Load(ctx, "path/to/hf-dir", model.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	w := base.Weights
	// NF4 with block 64 and double quantization, as QLoRA.
	if err := w.Quantize(ctx, nf4.Quantizer(nf4.Options{})); err != nil {
		log.Fatal(err)
	}
	cfg := lora.DefaultConfig()
	cfg.R, cfg.Alpha, cfg.TargetModules = 16, 32, lora.ModuleRegex(lora.AllLinear)
	adapter, err := lora.New(w, cfg, 1)
	if err != nil {
		log.Fatal(err)
	}
	data, err := train.LoadJSONL("../quickstart/data/train.jsonl", base.Tokenizer, w.Config.VocabSize, 0)
	if err != nil {
		log.Fatal(err)
	}
	tc := train.DefaultConfig() // the QLoRA paper's recipe: AdamW 2e-4, clip 0.3, constant
	tc.Steps, tc.BatchSize, tc.SeqLen, tc.OutDir = 5, 4, 64, outDir
	// Checkpoints, resumes, and saves the adapter in PEFT's format.
	if _, err := train.Train(ctx, w, adapter, data, nil, tc); err != nil {
		log.Fatal(err)
	}

	// Serving: one base in memory, many adapters, chosen per request.
	set := lora.NewSet(w)
	if err := set.Add("customer-a", adapter); err != nil { // others with lora.LoadFor(dir, w)
		log.Fatal(err)
	}
	a, ok := set.Get("customer-a")
	if !ok {
		log.Fatal("no adapter customer-a")
	}
	text, err := infer.Generate(ctx, w, base.Tokenizer, "Once upon a time",
		infer.GenerateOptions{MaxTokens: 20, Adapter: a})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("adapters:", set.Names(), "generated text:", text != "")
	// Output: adapters: [customer-a] generated text: true
}
