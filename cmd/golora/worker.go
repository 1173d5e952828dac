package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/golora/golora/jobs"
	"github.com/golora/golora/model"
	"github.com/golora/golora/train"
)

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	var nf natsFlags
	nf.register(fs)
	var w jobs.Worker
	fs.StringVar(&w.Name, "name", "", "worker name shown in job states (default host-pid)")
	fs.StringVar(&w.WorkDir, "work-dir", "", "directory for the run directories of jobs in progress (default the system's temporary directory)")
	fs.IntVar(&w.CheckpointEvery, "checkpoint-every", 10, "steps between checkpoints uploaded to the object store, for jobs that set none")
	idle := fs.Duration("exit-when-idle", 0, "exit after this long without a job (0: run until interrupted)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: golora worker (--nats URL | --nats-embedded DIR) [flags]

Trains the jobs queued with golora submit, one at a time, until interrupted:
downloads the data, trains (resuming from the job's last uploaded checkpoint
when another worker died on it), and publishes the adapter as the next
version of its name. Interrupted, it uploads its checkpoint and hands the
job back. Logs go to stderr.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	// Kubernetes stops a pod with SIGTERM: treat it as Ctrl-C, so that the
	// job in progress is checkpointed and handed back.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()
	conn, c, err := nf.connect(ctx, "golora worker", true)
	if err != nil {
		return err
	}
	defer conn.Close()
	w.Client = c
	w.Bases = loadBase
	w.Log = slog.New(slog.NewTextHandler(stderr, nil))
	if *idle <= 0 {
		return w.Run(ctx)
	}
	last := time.Now()
	for ctx.Err() == nil && time.Since(last) < *idle {
		ok, err := w.RunOne(ctx, min(*idle, 5*time.Second))
		if err != nil {
			w.Log.Warn("worker: fetching a job", "err", err)
			time.Sleep(500 * time.Millisecond)
		}
		if ok {
			last = time.Now()
		}
	}
	return nil
}

// loadBase loads a job's base model: the embedded one, or a model path
// present on this machine.
func loadBase(ctx context.Context, id string) (*model.Weights, train.Encoder, error) {
	if id == jobs.EmbeddedBase {
		return jobs.LoadEmbedded(ctx, id)
	}
	if _, err := os.Stat(id); err != nil {
		return nil, nil, fmt.Errorf("base model %q: not %s and not on this worker: %w", id, jobs.EmbeddedBase, err)
	}
	base, err := model.Load(ctx, id, model.LoadOptions{})
	if err != nil {
		return nil, nil, err
	}
	return base.Weights, base.Tokenizer, nil
}
