package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/train"
)

// BaseLoader loads the base model a job names, and its tokenizer.
type BaseLoader func(ctx context.Context, id string) (*model.Weights, train.Encoder, error)

// LoadEmbedded is the default BaseLoader: it knows EmbeddedBase only.
func LoadEmbedded(ctx context.Context, id string) (*model.Weights, train.Encoder, error) {
	if id != EmbeddedBase {
		return nil, nil, fmt.Errorf("unknown base model %q (this worker has %s)", id, EmbeddedBase)
	}
	base, err := model.Default()
	if err != nil {
		return nil, nil, err
	}
	return base.Weights, base.Tokenizer, nil
}

// Worker trains jobs one at a time. Set Client (and optionally the other
// fields), then call Run. A Worker must not be used by two goroutines at
// once; run several Workers for parallel jobs.
type Worker struct {
	Client *Client
	// Name identifies the worker in job states; default host name and
	// process id.
	Name string
	// Bases loads base models by id; default LoadEmbedded. Loaded bases are
	// kept for later jobs.
	Bases BaseLoader
	// WorkDir holds each job's run directory while it trains; default the
	// system's temporary directory.
	WorkDir string
	// CheckpointEvery is the number of steps between checkpoints (each
	// uploaded to the object store) for jobs that do not set one; default 10.
	CheckpointEvery int
	// Log receives one line per job event; default none.
	Log *slog.Logger

	bases map[string]loadedBase
	// afterUpload, when set (by tests), is called after each checkpoint
	// upload with the checkpoint's step.
	afterUpload func(step int)
	// afterAllocate, when set (by tests), is called after a version number
	// is allocated and before it is recorded in the job's state.
	afterAllocate func()
}

type loadedBase struct {
	w   *model.Weights
	tok train.Encoder
}

// permanentError marks a failure of the job itself (its data, settings or
// training diverging): retrying cannot help.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// errLostJob reports that another worker has taken over the job.
var errLostJob = errors.New("jobs: another worker took over the job")

func (w *Worker) log() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return w.Log
}

func (w *Worker) init() {
	if w.Name == "" {
		host, _ := os.Hostname()
		w.Name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if w.Bases == nil {
		w.Bases = LoadEmbedded
	}
	if w.CheckpointEvery <= 0 {
		w.CheckpointEvery = 10
	}
	if w.bases == nil {
		w.bases = map[string]loadedBase{}
	}
}

// Run takes jobs and trains them one at a time until ctx is done, then
// returns nil. A job in progress when ctx is cancelled is checkpointed,
// uploaded and handed back to the queue for another worker.
func (w *Worker) Run(ctx context.Context) error {
	w.init()
	stopAdvisories, err := w.Client.watchMaxDeliveries(w.log())
	if err != nil {
		return err
	}
	defer stopAdvisories()
	for ctx.Err() == nil {
		if _, err := w.RunOne(ctx, 5*time.Second); err != nil && ctx.Err() == nil {
			w.log().Warn("worker: fetching a job", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// RunOne waits up to wait for a job and handles it. It reports whether
// there was one. Errors are those of the queue, not of the job: a job's own
// failure is recorded in its state.
func (w *Worker) RunOne(ctx context.Context, wait time.Duration) (bool, error) {
	w.init()
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	msg, err := w.Client.consumer.Next(jetstream.FetchContext(fctx))
	if err != nil {
		if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return false, nil
		}
		return false, fmt.Errorf("jobs: %w", err)
	}
	w.handle(ctx, msg)
	return true, nil
}

// handle runs one delivery of a job to its end: done, failed, handed back,
// or abandoned to another worker.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	c, log := w.Client, w.log()
	var attempt uint64 = 1
	if meta, err := msg.Metadata(); err == nil {
		attempt = meta.NumDelivered
	}
	var job Job
	if err := json.Unmarshal(msg.Data(), &job); err != nil || job.ID == "" {
		log.Error("worker: unreadable job message; dropping it", "subject", msg.Subject(), "err", err)
		msg.TermWithReason("unreadable job")
		return
	}
	log = log.With("job", job.ID, "adapter", job.Adapter, "attempt", attempt)
	st, rev, err := c.getStatus(ctx, job.ID)
	if err != nil {
		log.Warn("worker: reading the job's state; retrying later", "err", err)
		msg.NakWithDelay(time.Second)
		return
	}
	if st.State == Done || st.State == Failed {
		// A redelivery of a job that has ended (its worker died between
		// recording the end and acknowledging): nothing to do.
		msg.Ack()
		return
	}
	st.State, st.Worker, st.Attempts, st.Error = Running, w.Name, int(attempt), ""
	if st.Started.IsZero() {
		st.Started = time.Now().UTC()
	}
	if rev, err = c.putStatus(ctx, st, rev); err != nil {
		log.Warn("worker: claiming the job; leaving it", "err", err)
		msg.NakWithDelay(time.Second)
		return
	}
	log.Info("worker: job started", "from_step", stepOf(st.Checkpoint))

	jobCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // keep the delivery ours while training
		defer wg.Done()
		tick := time.NewTicker(c.opts.AckWait / 4)
		defer tick.Stop()
		for {
			select {
			case <-jobCtx.Done():
				return
			case <-tick.C:
				msg.InProgress()
			}
		}
	}()
	run := &jobRun{w: w, job: job, st: st, rev: rev, log: log, cancel: cancel}
	err = run.train(jobCtx)
	cancel(nil)
	wg.Wait()
	defer os.RemoveAll(run.dir)
	st, rev = run.st, run.rev

	// From here on the outcome is recorded with a context that outlives a
	// cancelled ctx, so that a worker asked to stop still hands its job on.
	fin, finCancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer finCancel()
	var perm *permanentError
	switch {
	case errors.Is(err, errLostJob):
		log.Warn("worker: another worker took the job over; leaving it")
	case err == nil:
		if err := run.publish(fin); err != nil {
			w.retryOrFail(fin, msg, run, attempt, err)
			return
		}
		if err := msg.DoubleAck(fin); err != nil {
			// The job is recorded as done: a redelivery only acknowledges it.
			log.Warn("worker: acknowledging a finished job", "err", err)
		}
		run.deleteCheckpoints(fin, nil)
		log.Info("worker: job done", "version", run.st.Version, "loss", run.st.Loss)
	case errors.As(err, &perm):
		st.State, st.Error, st.Finished = Failed, err.Error(), time.Now().UTC()
		if _, err := c.putStatus(fin, st, rev); err != nil {
			log.Warn("worker: recording the failure", "err", err)
		}
		msg.TermWithReason(truncate(st.Error, 200))
		run.deleteCheckpoints(fin, nil)
		log.Warn("worker: job failed", "err", st.Error)
	case ctx.Err() != nil:
		// Asked to stop: save what was done and hand the job back.
		if err := run.uploadCheckpoint(fin, run.trainerStep); err != nil {
			log.Warn("worker: uploading the last checkpoint before stopping", "err", err)
		}
		st = run.st
		st.State, st.Worker = Queued, ""
		c.putStatus(fin, st, run.rev)
		msg.Nak()
		log.Info("worker: stopped; job handed back", "checkpoint_step", stepOf(run.st.Checkpoint))
	default:
		w.retryOrFail(fin, msg, run, attempt, err)
	}
}

// retryOrFail hands a job whose attempt failed for an outside reason back
// to the queue, or ends it as failed when it was the last delivery allowed.
func (w *Worker) retryOrFail(ctx context.Context, msg jetstream.Msg, run *jobRun, attempt uint64, cause error) {
	c := w.Client
	st := run.st
	if attempt >= uint64(c.opts.MaxDeliver) {
		st.State, st.Finished = Failed, time.Now().UTC()
		st.Error = fmt.Sprintf("gave up after %d attempts: %v", attempt, cause)
		c.putStatus(ctx, st, run.rev)
		msg.TermWithReason(truncate(st.Error, 200))
		run.deleteCheckpoints(ctx, nil)
		run.log.Warn("worker: job failed", "err", st.Error)
		return
	}
	st.State, st.Worker = Queued, ""
	c.putStatus(ctx, st, run.rev)
	msg.NakWithDelay(2 * time.Second)
	run.log.Warn("worker: attempt failed; job handed back", "err", cause)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func stepOf(ck *CheckpointRef) int {
	if ck == nil {
		return 0
	}
	return ck.Step
}

// putStatus writes st if the job's state is still at revision rev, and
// returns the new revision; errLostJob if someone else changed it.
func (c *Client) putStatus(ctx context.Context, st Status, rev uint64) (uint64, error) {
	js, err := json.Marshal(st)
	if err != nil {
		return 0, fmt.Errorf("jobs: job %s: %w", st.ID, err)
	}
	rev, err = casPut(ctx, c.status, st.ID, js, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return 0, errLostJob
	}
	if err != nil {
		return 0, fmt.Errorf("jobs: job %s: recording its state: %w", st.ID, err)
	}
	return rev, nil
}

// jobRun is one delivery of a job to this worker.
type jobRun struct {
	w      *Worker
	job    Job
	st     Status
	rev    uint64
	log    *slog.Logger
	cancel context.CancelCauseFunc

	dir         string // the train run's OutDir
	every       int    // steps between checkpoints
	trainerStep int    // the trainer's step when training stopped
	uploadedSig string // what the last uploaded checkpoint looked like on disk
	lastStatus  time.Time
}

// train trains the job in a fresh run directory, resuming from the job's
// uploaded checkpoint if there is one.
func (r *jobRun) train(ctx context.Context) error {
	w, c, job := r.w, r.w.Client, r.job
	var err error
	if r.dir, err = os.MkdirTemp(w.WorkDir, "golora-job-"+job.ID+"-"); err != nil {
		return fmt.Errorf("jobs: job %s: %w", job.ID, err)
	}
	data, err := getObject(ctx, c.work, job.Data)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return permanent(fmt.Errorf("training data %s is missing from the object store", job.Data))
	} else if err != nil {
		return fmt.Errorf("jobs: job %s: reading %s: %w", job.ID, job.Data, err)
	}
	base, err := w.base(ctx, job.Base, job.Quantize)
	if err != nil {
		return permanent(err)
	}
	cfg := job.Train.config(r.dir, w.CheckpointEvery)
	// Without packing a row holds the first SeqLen+1 tokens of an example:
	// the rest of a long line need not be kept in memory.
	maxTokens := cfg.SeqLen + 1
	if cfg.Pack {
		maxTokens = 0
	}
	examples, err := train.ReadJSONL(bytes.NewReader(data), job.Data, base.tok, base.w.Config.VocabSize, maxTokens)
	if err != nil {
		return permanent(err)
	}
	var evalSet []train.Example
	if job.Train.EvalSplit > 0 {
		if examples, evalSet, err = train.Split(examples, job.Train.EvalSplit, job.Train.Seed); err != nil {
			return permanent(err)
		}
	}
	lcfg := job.LoRA
	lcfg.BaseModelNameOrPath = job.Base
	adapter, err := lora.New(base.w, lcfg, job.Train.Seed)
	if err != nil {
		return permanent(err)
	}
	resumed := false
	if r.st.Checkpoint != nil {
		if err := r.downloadCheckpoint(ctx); err != nil {
			return err
		}
		resumed = true
	}
	r.every = cfg.CheckpointEvery
	var t *train.Trainer
	cfg.OnStep = func(m train.Metric) { r.afterStep(ctx, t, m) }
	if t, err = train.New(base.w, adapter, examples, evalSet, cfg); err != nil {
		return permanent(err)
	}
	defer t.Close()
	if resumed {
		if err := t.Resume(); err != nil {
			// A checkpoint this run cannot continue is worth less than the
			// job: start over (the Trainer is unchanged by a failed Resume).
			r.log.Warn("worker: cannot resume from the uploaded checkpoint; starting over", "err", err)
		} else {
			r.st.ResumedFrom = t.Steps()
			r.log.Info("worker: resumed", "step", t.Steps())
		}
	}
	res, err := t.Run(ctx)
	r.trainerStep = t.Steps()
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil && !errors.Is(cause, context.Canceled) {
			return cause // set by afterStep: an upload failed or the job was lost
		}
		var nf *train.NonFiniteError
		if errors.As(err, &nf) {
			return permanent(err)
		}
		return err
	}
	r.st.Step, r.st.Loss = res.Steps, res.TrainLoss
	return nil
}

// afterStep records progress (at most every quarter second) and uploads a
// checkpoint train has written since the last upload. Failures cancel the
// run with their cause.
func (r *jobRun) afterStep(ctx context.Context, t *train.Trainer, m train.Metric) {
	if m.EvalLoss != nil {
		return
	}
	r.st.Step, r.st.Loss = m.Step, m.Loss
	// The hook runs before the step's own checkpoint is written: what is on
	// disk is the checkpoint of an earlier step, the last multiple of
	// CheckpointEvery before this one.
	ckStep := (m.Step - 1) / r.every * r.every
	if sig := r.checkpointSig(); ckStep > 0 && sig != "" && sig != r.uploadedSig {
		if err := r.uploadCheckpoint(ctx, ckStep); err != nil {
			r.cancel(err)
		}
		return
	}
	if time.Since(r.lastStatus) < 250*time.Millisecond {
		return
	}
	r.lastStatus = time.Now()
	rev, err := r.w.Client.putStatus(ctx, r.st, r.rev)
	if err != nil {
		r.cancel(err)
		return
	}
	r.rev = rev
}

// checkpointSig describes the checkpoint directory's files (names, sizes,
// modification times), or is empty when there is none.
func (r *jobRun) checkpointSig() string {
	dir := filepath.Join(r.dir, train.CheckpointDir)
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return ""
	}
	var b bytes.Buffer
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		fmt.Fprintf(&b, "%s %d %d\n", e.Name(), info.Size(), info.ModTime().UnixNano())
	}
	return b.String()
}

// uploadCheckpoint copies train's checkpoint directory to
// ID/checkpoint/STEP/ in the work store, records it in the job's state, and
// deletes the previous upload. Until the state names the new upload the old
// one stays the one a redelivery resumes from.
func (r *jobRun) uploadCheckpoint(ctx context.Context, step int) error {
	c := r.w.Client
	sig := r.checkpointSig()
	if sig == "" || sig == r.uploadedSig {
		return nil
	}
	dir := filepath.Join(r.dir, train.CheckpointDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("jobs: job %s: checkpoint: %w", r.job.ID, err)
	}
	ref := &CheckpointRef{Step: step}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("jobs: job %s: checkpoint: %w", r.job.ID, err)
		}
		if _, err := putObject(ctx, c.work, checkpointObject(r.job.ID, step, e.Name()), data); err != nil {
			return fmt.Errorf("jobs: job %s: uploading checkpoint %s: %w", r.job.ID, e.Name(), err)
		}
		ref.Files = append(ref.Files, e.Name())
	}
	old := r.st.Checkpoint
	r.st.Checkpoint = ref
	rev, err := c.putStatus(ctx, r.st, r.rev)
	if err != nil {
		r.st.Checkpoint = old
		return err
	}
	r.rev, r.uploadedSig, r.lastStatus = rev, sig, time.Now()
	if old != nil && old.Step != step {
		r.deleteCheckpoints(ctx, old)
	}
	if r.w.afterUpload != nil {
		r.w.afterUpload(step)
	}
	return nil
}

// downloadCheckpoint puts the job's uploaded checkpoint where train.Resume
// looks for it.
func (r *jobRun) downloadCheckpoint(ctx context.Context) error {
	ck := r.st.Checkpoint
	dir := filepath.Join(r.dir, train.CheckpointDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("jobs: job %s: %w", r.job.ID, err)
	}
	for _, f := range ck.Files {
		if filepath.Base(f) != f || f == "." || f == ".." {
			return permanent(fmt.Errorf("checkpoint file name %q is not a plain name", f))
		}
		data, err := getObject(ctx, r.w.Client.work, checkpointObject(r.job.ID, ck.Step, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, f), data, 0o644)
		}
		if err != nil {
			return fmt.Errorf("jobs: job %s: downloading checkpoint %d file %s: %w", r.job.ID, ck.Step, f, err)
		}
	}
	r.uploadedSig = r.checkpointSig()
	return nil
}

// deleteCheckpoints removes an uploaded checkpoint (nil: the job's current
// one) from the work store. Leftovers only cost space, so errors are logged.
func (r *jobRun) deleteCheckpoints(ctx context.Context, ck *CheckpointRef) {
	if ck == nil {
		ck = r.st.Checkpoint
	}
	if ck == nil {
		return
	}
	for _, f := range ck.Files {
		if err := r.w.Client.work.Delete(ctx, checkpointObject(r.job.ID, ck.Step, f)); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			r.log.Warn("worker: deleting an old checkpoint", "step", ck.Step, "file", f, "err", err)
		}
	}
}

// publish stores the trained adapter as a new version and records the job
// as done. The version number is allocated once per job and kept in its
// state, so a retry after a crash republishes the same version.
func (r *jobRun) publish(ctx context.Context) error {
	c := r.w.Client
	if r.st.Version == 0 {
		n, err := c.allocateVersion(ctx, r.job.Adapter, r.job.ID)
		if err != nil {
			return err
		}
		if r.w.afterAllocate != nil {
			r.w.afterAllocate()
		}
		r.st.Version = n
		rev, err := c.putStatus(ctx, r.st, r.rev)
		if err != nil {
			return err
		}
		r.rev = rev
	}
	v := Version{Name: r.job.Adapter, Version: r.st.Version, Job: r.job.ID, Base: r.job.Base, Created: time.Now().UTC()}
	if err := c.publishVersion(ctx, r.dir, v); err != nil {
		return err
	}
	r.st.State, r.st.Finished = Done, time.Now().UTC()
	rev, err := c.putStatus(ctx, r.st, r.rev)
	if err != nil {
		return err
	}
	r.rev = rev
	return nil
}

// base returns the job's base model, loading and quantizing it on first use.
func (w *Worker) base(ctx context.Context, id, quantize string) (loadedBase, error) {
	if quantize == "" {
		quantize = "nf4"
	}
	key := id + "\x00" + quantize
	if b, ok := w.bases[key]; ok {
		return b, nil
	}
	weights, tok, err := w.Bases(ctx, id)
	if err != nil {
		return loadedBase{}, err
	}
	switch quantize {
	case "nf4":
		err = weights.Quantize(ctx, nf4.Quantizer(nf4.Options{}))
	case "none":
	default:
		err = fmt.Errorf("quantize %q: want nf4 or none", quantize)
	}
	if err != nil {
		return loadedBase{}, fmt.Errorf("base model %s: %w", id, err)
	}
	b := loadedBase{w: weights, tok: tok}
	w.bases[key] = b
	return b, nil
}

// maxDeliveriesSubject is where JetStream reports a job delivered
// MaxDeliver times without an acknowledgement (its workers all died).
const maxDeliveriesSubject = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + StreamName + "." + ConsumerName

// watchMaxDeliveries ends as failed every job JetStream gives up on (its
// last delivery's worker died too) and removes it from the stream, so that
// it is neither left running nor left in the queue. Any worker may do it;
// the state's compare-and-set makes it happen once.
func (c *Client) watchMaxDeliveries(log *slog.Logger) (stop func(), err error) {
	sub, err := c.js.Conn().Subscribe(maxDeliveriesSubject, func(m *nats.Msg) {
		var adv struct {
			StreamSeq  uint64 `json:"stream_seq"`
			Deliveries uint64 `json:"deliveries"`
		}
		if json.Unmarshal(m.Data, &adv) != nil || adv.StreamSeq == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := c.js.Stream(ctx, StreamName)
		if err != nil {
			return
		}
		raw, err := s.GetMsg(ctx, adv.StreamSeq)
		if err != nil {
			return // already removed by another worker
		}
		var job Job
		if json.Unmarshal(raw.Data, &job) == nil && job.ID != "" {
			if st, rev, err := c.getStatus(ctx, job.ID); err == nil && st.State != Done && st.State != Failed {
				st.State, st.Finished = Failed, time.Now().UTC()
				st.Error = fmt.Sprintf("gave up after %d deliveries: the worker of each stopped answering", adv.Deliveries)
				if _, err := c.putStatus(ctx, st, rev); err == nil {
					log.Warn("worker: job failed", "job", job.ID, "err", st.Error)
				}
			}
		}
		s.DeleteMsg(ctx, adv.StreamSeq)
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return func() { sub.Unsubscribe() }, nil
}
