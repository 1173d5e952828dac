// Command golora finetunes LLaMA-family models with LoRA and QLoRA, and runs
// them.
//
//	golora generate   continue a prompt with a base model (and an adapter)
//	golora train      train a LoRA adapter on a JSONL file (QLoRA by default)
//	golora eval       mean next-token loss and perplexity over a JSONL file
//	golora merge      write a base model with an adapter merged in
//	golora quantize   write a model's linear layers in NF4 (bitsandbytes layout)
//	golora inspect    show a model's or an adapter's config and tensors
//	golora serve      serve the base and many adapters with an OpenAI-compatible API
//	golora submit     queue a training job on NATS JetStream
//	golora worker     train the queued jobs, one at a time
//	golora jobs       list the jobs and their states (or the adapters)
//
// With no --model the embedded stories260K model is used, so every command
// works on a fresh machine with no files. Run "golora COMMAND -h" for a
// command's flags. Results go to stdout, logs to stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"generate", "continue a prompt with a base model (and an adapter)", runGenerate},
		{"train", "train a LoRA adapter on a JSONL file (QLoRA by default)", runTrain},
		{"eval", "mean next-token loss and perplexity over a JSONL file", runEval},
		{"merge", "write a Hugging Face checkpoint with an adapter merged in", runMerge},
		{"quantize", "write a model's linear layers in NF4 (bitsandbytes layout)", runQuantize},
		{"inspect", "show a model's or an adapter's config and tensors", runInspect},
		{"serve", "serve the base and many adapters with an OpenAI-compatible API", runServe},
		{"submit", "queue a training job on NATS JetStream", runSubmit},
		{"worker", "train the queued jobs, one at a time", runWorker},
		{"jobs", "list the jobs and their states (or the adapters)", runJobs},
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `golora finetunes LLaMA-family models with LoRA and QLoRA.

Usage: golora COMMAND [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Without --model every command uses the embedded stories260K model
(a 260K-parameter LLaMA-2 trained on TinyStories), so this works as is:

  golora generate --prompt "Once upon a time"
  golora train --data examples/quickstart/data/train.jsonl --out adapter
  golora generate --adapter adapter --prompt "Lily had a ball"

Run "golora COMMAND -h" for a command's flags.
`)
}

func main() {
	os.Exit(runWithSignals(os.Args[1:], os.Stdout, os.Stderr))
}

// runWithSignals is run with a context that SIGINT and SIGTERM cancel:
// SIGTERM (kill, systemd, Docker, Kubernetes) stops like Ctrl-C, so that a
// training run checkpoints and says how to continue.
func runWithSignals(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, stdout, stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(stderr, "golora %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "golora: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// errUsage reports bad flags; the flag package has already printed why.
var errUsage = errors.New("usage")

// parseFlags parses a command's flags, printing its usage on error.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "golora %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
