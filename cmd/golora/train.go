package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/golora/golora/internal/dirlock"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/train"
)

// trainFlags are the flags of golora train.
type trainFlags struct {
	mf                  modelFlags
	data, evalData, out string
	evalSplit           float64
	resume              bool
	endToken            string

	loraFlags

	cfg train.Config
}

// loraFlags are the adapter's flags, shared by golora train and golora
// submit.
type loraFlags struct {
	rank           int
	alpha, dropout float64
	targets        string
	rslora         bool
}

func (f *loraFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.rank, "rank", 8, "LoRA rank r")
	fs.Float64Var(&f.alpha, "alpha", 16, "LoRA alpha; the update is scaled by alpha/r (alpha/√r with --rslora)")
	fs.Float64Var(&f.dropout, "dropout", 0.05, "dropout on the adapters' input")
	fs.StringVar(&f.targets, "targets", lora.AllLinear, "layers to adapt: all-linear, or a comma-separated list of names or suffixes (q_proj,v_proj)")
	fs.BoolVar(&f.rslora, "rslora", false, "rank-stabilized LoRA scaling alpha/√r")
}

// config is the lora.Config the flags describe.
func (f *loraFlags) config() lora.Config {
	c := lora.DefaultConfig()
	c.R, c.Alpha, c.Dropout, c.UseRSLoRA = f.rank, f.alpha, f.dropout, f.rslora
	c.TargetModules = parseTargets(f.targets)
	return c
}

func (f *trainFlags) register(fs *flag.FlagSet) {
	f.mf.register(fs, "nf4")
	f.mf.registerChatTemplate(fs)
	fs.StringVar(&f.data, "data", "", "training data, JSONL: {\"text\": ...}, {\"prompt\": ..., \"completion\": ...}, {\"messages\": [{\"role\": ..., \"content\": ...}, ...]} (rendered with the model's tokenizer_config.json chat template, loss on assistant turns) or {\"input_ids\": [...]} per line (required)")
	fs.StringVar(&f.evalData, "eval-data", "", "held-out data, JSONL as --data; default: --eval-split of --data")
	fs.Float64Var(&f.evalSplit, "eval-split", 0.05, "fraction of --data held out for evaluation when --eval-data is not given (0: none)")
	fs.StringVar(&f.out, "out", "", "output directory: adapter_config.json, adapter_model.safetensors, metrics.jsonl, loss.png, checkpoint/ (required)")
	fs.BoolVar(&f.resume, "resume", false, "continue from the checkpoint in --out")
	fs.StringVar(&f.endToken, "end-token", "auto", "token appended to close each text example, which the adapter learns to stop with: eos, bos, or auto (bos for llama2.c-trained models such as the embedded one, which never saw EOS; eos otherwise)")

	f.loraFlags.register(fs)

	cfg := &f.cfg
	*cfg = train.DefaultConfig()
	registerOptimFlags(fs, cfg, 50)
	fs.IntVar(&cfg.CheckpointEvery, "checkpoint-every", 50, "write a checkpoint every N steps (0: only at the end)")
}

// registerOptimFlags registers on fs the optimization flags golora train and
// golora submit share, into cfg, with --eval-every defaulting to evalEvery.
func registerOptimFlags(fs *flag.FlagSet, cfg *train.Config, evalEvery int) {
	fs.IntVar(&cfg.Steps, "steps", 200, "optimizer steps")
	fs.Float64Var(&cfg.LR, "lr", 1e-3, "peak learning rate (the QLoRA paper uses 2e-4 for 7B–65B models; small models take larger steps)")
	fs.IntVar(&cfg.BatchSize, "batch", 4, "sequences per micro-batch")
	fs.IntVar(&cfg.SeqLen, "seq-len", 128, "tokens per sequence")
	fs.IntVar(&cfg.GradAccum, "grad-accum", 1, "micro-batches whose gradients are averaged into one step")
	fs.Float64Var(&cfg.WarmupRatio, "warmup", 0.03, "fraction of the steps spent warming the learning rate up")
	fs.BoolVar(&cfg.Cosine, "cosine", false, "cosine decay after warmup (default: constant, as QLoRA)")
	fs.Float64Var(&cfg.WeightDecay, "weight-decay", 0, "AdamW decoupled weight decay")
	fs.Float64Var(&cfg.MaxGradNorm, "max-grad-norm", 0.3, "clip the global gradient norm (0: off)")
	fs.IntVar(&cfg.EvalEvery, "eval-every", evalEvery, "evaluate every N steps (and at the end)")
	fs.BoolVar(&cfg.Pack, "pack", false, "pack examples end to end into full sequences instead of padding each")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "random seed: adapter initialization, data order, dropout")
}

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	var f trainFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: golora train --data FILE.jsonl --out DIR [flags]

Trains a LoRA adapter on a frozen base model — QLoRA by default: the base's
linear layers are held in 4-bit NF4 — and saves it in Hugging Face PEFT's
format. Without --model the embedded stories260K model is the base, so

  golora train --data examples/quickstart/data/train.jsonl --out adapter

works as is. Progress goes to stderr; metrics to DIR/metrics.jsonl.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if f.data == "" || f.out == "" {
		fmt.Fprintln(stderr, "golora train: --data and --out are required")
		fs.Usage()
		return errUsage
	}
	if err := f.prepare(); err != nil {
		return err
	}
	ck, err := f.mf.load(ctx, stderr)
	if err != nil {
		return err
	}
	tok, err := f.endEncoder(ck)
	if err != nil {
		return err
	}
	trainSet, evalSet, err := f.loadData(tok, ck.Weights.Config.VocabSize)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "data: %d training examples, %d held out\n", len(trainSet), len(evalSet))
	adapter, err := f.newAdapter(ck)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "LoRA r %d, alpha %g on %d layers: %d trainable parameters\n",
		adapter.Config.R, adapter.Config.Alpha, len(adapter.Modules()), adapter.NumParams())
	res, err := f.train(ctx, ck.Weights, adapter, trainSet, evalSet, stderr)
	switch {
	case errors.Is(err, train.ErrFinished):
		fmt.Fprintf(stderr, "%s: the run already did all its %d steps; nothing to do (the adapter is in %s)\n", f.out, f.cfg.Steps, f.out)
		return nil
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return fmt.Errorf("interrupted: %w; run the same command with --resume to continue from the last checkpoint in %s", err, f.out)
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "trained %d steps: train loss %.4f", res.Steps, res.TrainLoss)
	if len(evalSet) > 0 {
		fmt.Fprintf(stdout, ", held-out loss %.4f (perplexity %.3f)", res.EvalLoss, res.EvalPerplexity)
	}
	fmt.Fprintf(stdout, "\nadapter saved to %s\n", f.out)
	return nil
}

// prepare checks the flags, completes the training configuration from them
// and checks the output directory against --resume. Its messages name the
// flags, not the library's fields.
func (f *trainFlags) prepare() error {
	c := &f.cfg
	switch {
	case c.Steps < 1:
		return fmt.Errorf("--steps %d: want at least 1", c.Steps)
	case c.BatchSize < 1:
		return fmt.Errorf("--batch %d: want at least 1", c.BatchSize)
	case c.SeqLen < 1:
		return fmt.Errorf("--seq-len %d: want at least 1", c.SeqLen)
	case c.GradAccum < 1:
		return fmt.Errorf("--grad-accum %d: want at least 1 (1 is no accumulation)", c.GradAccum)
	case !(f.evalSplit >= 0 && f.evalSplit < 1):
		return fmt.Errorf("--eval-split %v: want a fraction in [0, 1)", f.evalSplit)
	case c.EvalEvery < 0 || c.CheckpointEvery < 0:
		return fmt.Errorf("--eval-every %d and --checkpoint-every %d must not be negative", c.EvalEvery, c.CheckpointEvery)
	case f.rank < 1:
		return fmt.Errorf("--rank %d: want at least 1", f.rank)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("--lr %v: want a positive number", c.LR)
	case !(c.WarmupRatio >= 0 && c.WarmupRatio <= 1):
		return fmt.Errorf("--warmup %v: want a fraction in [0, 1]", c.WarmupRatio)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return fmt.Errorf("--weight-decay %v: want a non-negative number", c.WeightDecay)
	case !(c.MaxGradNorm >= 0) || math.IsInf(c.MaxGradNorm, 0):
		return fmt.Errorf("--max-grad-norm %v: want a non-negative number (0 disables clipping)", c.MaxGradNorm)
	}
	f.cfg.OutDir = f.out
	if f.cfg.CheckpointEvery == 0 {
		f.cfg.CheckpointEvery = f.cfg.Steps
	}
	if err := c.Validate(); err != nil {
		// The remaining fields map one to one to flags of the same name.
		return fmt.Errorf("invalid flags: %w", err)
	}
	// Fail at once, before the model loads, if another run writes to
	// --out; train.New takes the lock for the run itself.
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	lock, err := dirlock.Acquire(f.out)
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	lock.Release()
	if _, err := os.Stat(train.CheckpointPath(f.out)); err == nil && !f.resume {
		return fmt.Errorf("%s already holds a checkpoint: pass --resume to continue it, or choose another --out", f.out)
	}
	return nil
}

// endEncoder returns the tokenizer that closes text examples with the
// --end-token: llama2.c checkpoints (the embedded one among them) mark the
// end of a text with the next text's BOS and never learned EOS.
func (f *trainFlags) endEncoder(ck *model.Base) (train.Encoder, error) {
	if ck.Tokenizer == nil {
		return nil, nil
	}
	end := f.endToken
	if end == "auto" {
		end = "eos"
		if ck.Format == model.FormatEmbedded || ck.Format == model.FormatLlama2C {
			end = "bos"
		}
	}
	enc, err := f.mf.dataEncoder(ck)
	if err != nil {
		return nil, err
	}
	switch end {
	case "eos":
		return enc, nil
	case "bos":
		if ck.Tokenizer.BOS() < 0 {
			return nil, errors.New("--end-token bos: the tokenizer has no BOS")
		}
		return withEndChat{train.WithEnd(enc, ck.Tokenizer.BOS()), enc}, nil
	}
	return nil, fmt.Errorf("--end-token %q: want auto, eos or bos", f.endToken)
}

// loadData reads --data and the held-out examples: --eval-data, or
// --eval-split of --data.
func (f *trainFlags) loadData(tok train.Encoder, vocab int) (trainSet, evalSet []train.Example, err error) {
	// Without packing a row holds the first --seq-len + 1 tokens of an
	// example; the rest need not be read into memory.
	maxTokens := f.cfg.SeqLen + 1
	if f.cfg.Pack {
		maxTokens = 0
	}
	if trainSet, err = train.LoadJSONL(f.data, tok, vocab, maxTokens); err != nil {
		return nil, nil, err
	}
	if f.evalData != "" {
		if evalSet, err = train.LoadJSONL(f.evalData, tok, vocab, maxTokens); err != nil {
			return nil, nil, err
		}
	} else if f.evalSplit > 0 {
		if trainSet, evalSet, err = train.Split(trainSet, f.evalSplit, f.cfg.Seed); err != nil {
			return nil, nil, err
		}
	}
	return trainSet, evalSet, nil
}

// newAdapter makes the adapter the LoRA flags describe on the base.
func (f *trainFlags) newAdapter(ck *model.Base) (*lora.Adapter, error) {
	lcfg := f.config()
	lcfg.BaseModelNameOrPath = ck.Path
	a, err := lora.New(ck.Weights, lcfg, f.cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("--rank %d, --alpha %g, --dropout %g, --targets %s: %w", f.rank, f.alpha, f.dropout, f.targets, err)
	}
	return a, nil
}

// train runs the trainer, resuming from the checkpoint with --resume.
func (f *trainFlags) train(ctx context.Context, base *model.Weights, adapter *lora.Adapter, trainSet, evalSet []train.Example, stderr io.Writer) (*train.Result, error) {
	cfg := f.cfg
	cfg.Progress = stderr
	t, err := train.New(base, adapter, trainSet, evalSet, cfg)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	if f.resume {
		if err := t.Resume(); err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "resumed at step %d\n", t.Steps())
	}
	return t.Run(ctx)
}

// parseTargets reads --targets: the all-linear shorthand or a list.
func parseTargets(s string) lora.Modules {
	if s == lora.AllLinear {
		return lora.ModuleRegex(lora.AllLinear)
	}
	var names []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return lora.ModuleNames(names...)
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	var mf modelFlags
	mf.register(fs, "none")
	mf.registerChatTemplate(fs)
	data := fs.String("data", "", "JSONL data as for train (required)")
	adapter := fs.String("adapter", "", "LoRA adapter directory (PEFT format); default: the base alone")
	asJSON := fs.Bool("json", false, "print JSON")
	batch := fs.Int("batch", 4, "sequences per batch")
	seqLen := fs.Int("seq-len", 128, "tokens per sequence (longer examples are truncated)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: golora eval --data FILE.jsonl [flags]\n\nPrints the mean next-token loss and perplexity over the file.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *data == "" {
		fmt.Fprintln(stderr, "golora eval: --data is required")
		fs.Usage()
		return errUsage
	}
	if *batch < 1 || *seqLen < 1 {
		return fmt.Errorf("--batch %d and --seq-len %d: want at least 1 each", *batch, *seqLen)
	}
	// Pre-tokenized data (input_ids) needs no tokenizer; text records
	// without one are refused by the reader, naming the line.
	mf.tokenizerOptional = true
	ck, err := mf.load(ctx, stderr)
	if err != nil {
		return err
	}
	enc, err := mf.dataEncoder(ck)
	if err != nil {
		return err
	}
	examples, err := train.LoadJSONL(*data, enc, ck.Weights.Config.VocabSize, *seqLen+1)
	if err != nil {
		return err
	}
	var a *lora.Adapter
	if *adapter != "" {
		if a, err = lora.LoadFor(*adapter, ck.Weights); err != nil {
			return err
		}
	}
	res, err := train.Evaluate(ctx, ck.Weights, a, examples, *batch, *seqLen, 0)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, map[string]any{
			"data": *data, "model": ck.Path, "adapter": *adapter, "examples": len(examples),
			"tokens": res.Tokens, "loss": res.Loss, "perplexity": res.Perplexity,
		})
	}
	fmt.Fprintf(stdout, "%s: %d examples, %d target tokens: loss %.4f, perplexity %.3f\n",
		*data, len(examples), res.Tokens, res.Loss, res.Perplexity)
	return nil
}
