package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/golora/golora/internal/fsutil"
	"github.com/golora/golora/jobs"
	"github.com/golora/golora/train"
)

// maxJobData bounds the training data of one job: submit reads it whole
// into one object-store put.
const maxJobData = 1 << 30

func runSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	var nf natsFlags
	nf.register(fs)
	name := fs.String("adapter", "", "name of the adapter the job trains a new version of (required)")
	data := fs.String("data", "", "training data, JSONL as for golora train (required)")
	base := fs.String("base", jobs.EmbeddedBase, "base model id the workers load: "+jobs.EmbeddedBase+" or a model path present on every worker")
	quantize := fs.String("quantize", "nf4", "how workers hold the frozen base: nf4 or none")
	asJSON := fs.Bool("json", false, "print the submitted job as JSON")

	var lf loraFlags
	lf.register(fs)

	optim := train.DefaultConfig()
	registerOptimFlags(fs, &optim, 0)
	checkpointEvery := fs.Int("checkpoint-every", 0, "checkpoint (and upload) every N steps; 0: the worker's --checkpoint-every")
	evalSplit := fs.Float64("eval-split", 0.05, "fraction of --data held out for evaluation")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: golora submit (--nats URL | --nats-embedded DIR) --adapter NAME --data FILE.jsonl [flags]

Queues a training job on NATS JetStream: the data goes to the object store,
the job to the work queue, its state (queued) to the job bucket. A golora
worker trains it and publishes the adapter as the next version of NAME.
Prints the job's id.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *name == "" || *data == "" {
		fmt.Fprintln(stderr, "golora submit: --adapter and --data are required")
		fs.Usage()
		return errUsage
	}
	// Like every file golora reads (issue 11), the data must be a regular
	// file of bounded size: a FIFO or /dev/zero would hang submit.
	body, err := fsutil.ReadRegular(*data, maxJobData)
	if err != nil {
		return err
	}
	ts := jobs.SettingsOf(optim)
	ts.CheckpointEvery, ts.EvalSplit = *checkpointEvery, *evalSplit
	job := jobs.Job{Adapter: *name, Base: *base, Quantize: *quantize, LoRA: lf.config(), Train: ts}

	conn, c, err := nf.connect(ctx, "golora submit", false)
	if err != nil {
		return err
	}
	defer conn.Close()
	job, err = c.Submit(ctx, job, body)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, job)
	}
	fmt.Fprintln(stdout, job.ID)
	return nil
}
