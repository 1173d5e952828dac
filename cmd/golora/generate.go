package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model/infer"
)

func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	var mf modelFlags
	mf.register(fs, "none")
	prompt := fs.String("prompt", "Once upon a time", "text to continue")
	adapter := fs.String("adapter", "", "LoRA adapter directory (PEFT format: adapter_config.json + adapter_model.safetensors)")
	maxTokens := fs.Int("max-tokens", 256, "most new tokens to generate; 0 means no limit: until EOS or the model's context is full (generation always stops at EOS)")
	temperature := fs.Float64("temperature", 0, "sampling temperature; 0 is greedy decoding")
	topP := fs.Float64("top-p", 0.9, "nucleus sampling: sample from the smallest set of tokens whose probability reaches top-p (1 disables)")
	seed := fs.Uint64("seed", 1, "random seed for sampling")
	head := fs.String("head", "exact", "output head's product: exact, or int8 (a copy of a float32 head in int8 blocks of 32, llama.cpp's Q8_0 layout: about 2x faster decoding on small models, logits within about 0.5% of their range)")
	activations := fs.String("activations", "exact", "vector precision of the NF4 linear layers' products in decode steps: exact, or int8 (the vector quantized to int8 in blocks of 32 and the NF4 levels to int8, integer dot products as llama.cpp runs Q4_0: about 2x faster NF4 products, logits within about 1.5% of their range; needs --quantize nf4 or an NF4 checkpoint)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: golora generate [flags]\n\nPrints the prompt and its continuation on stdout, token by token.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *maxTokens < 0 {
		return fmt.Errorf("--max-tokens %d is negative", *maxTokens)
	}
	headPrecision, err := infer.ParseHeadPrecision(*head)
	if err != nil {
		return fmt.Errorf("--head %w", err)
	}
	actPrecision, err := infer.ParseActivationPrecision(*activations)
	if err != nil {
		return fmt.Errorf("--activations %w", err)
	}
	// Check the sampling flags before anything is printed or loaded.
	if _, err := infer.NewSampler(infer.SamplerOptions{Temperature: *temperature, TopP: *topP,
		Rand: rand.New(rand.NewPCG(*seed, 0))}); err != nil {
		return err
	}
	ck, err := mf.load(ctx, stderr)
	if err != nil {
		return err
	}
	opts := infer.GenerateOptions{
		MaxTokens:   *maxTokens,
		Temperature: *temperature,
		TopP:        *topP,
		Rand:        rand.New(rand.NewPCG(*seed, 0)),
		Head:        headPrecision,
		Activations: actPrecision,
	}
	if *adapter != "" {
		a, err := lora.LoadFor(*adapter, ck.Weights)
		if err != nil {
			return err
		}
		opts.Adapter = a
		fmt.Fprintf(stderr, "adapter %s: %d modules, %d parameters\n", *adapter, len(a.Modules()), a.NumParams())
	}
	if headPrecision == infer.HeadInt8 {
		fmt.Fprintln(stderr, "output head: an int8 copy (--head int8)")
	}
	if actPrecision == infer.ActivationsInt8 {
		fmt.Fprintln(stderr, "NF4 products: int8 vectors (--activations int8)")
	}
	fmt.Fprint(stdout, *prompt)
	var n int
	opts.OnToken = func(id int, text string) error {
		if id >= 0 {
			n++
		}
		_, err := io.WriteString(stdout, text)
		return err
	}
	start := time.Now()
	if _, err := infer.Generate(ctx, ck.Weights, ck.Tokenizer, *prompt, opts); err != nil {
		fmt.Fprintln(stdout)
		return err
	}
	fmt.Fprintln(stdout)
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stderr, "%d tokens in %.2fs (%.0f tokens/s)\n", n, secs, float64(n)/secs)
	return nil
}
