package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/train"
)

// Names of the JetStream stream, consumer, buckets and subjects; see the
// package documentation for what each holds.
const (
	StreamName         = "GOLORA_JOBS"
	SubjectPrefix      = "golora.jobs."
	ConsumerName       = "golora-workers"
	StatusBucket       = "golora_jobs"
	AdapterIndexBucket = "golora_adapters"
	WorkBucket         = "golora_work"
	AdapterFileBucket  = "golora_adapter_files"
)

// EmbeddedBase is the base model id of the stories260K model built into
// golora (model.DefaultPath).
const EmbeddedBase = model.DefaultPath

// Options configure the stream, consumer and buckets Setup creates. The zero
// value means the defaults given per field.
type Options struct {
	// Replicas is the number of copies of every stream and bucket: 1 on a
	// single server, 3 on a production cluster. Default 1.
	Replicas int
	// AckWait is how long a job may go without an acknowledgement (workers
	// send one every AckWait/4 while they train) before it is given to
	// another worker. Default 30 s.
	AckWait time.Duration
	// MaxDeliver bounds the deliveries of one job; after the last one fails
	// for any reason the job ends as failed. Default 5.
	MaxDeliver int
}

func (o Options) withDefaults() Options {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = 5
	}
	return o
}

// Client submits and lists jobs and reads adapters. It is safe for
// concurrent use.
type Client struct {
	opts     Options
	js       jetstream.JetStream
	consumer jetstream.Consumer
	status   jetstream.KeyValue
	index    jetstream.KeyValue
	work     jetstream.ObjectStore
	files    jetstream.ObjectStore
}

// Setup creates (or updates to opts) the stream, consumer and buckets on the
// server nc is connected to, and returns a Client using them. Every process
// of a deployment may call it with the same opts.
func Setup(ctx context.Context, nc *nats.Conn, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	c := &Client{opts: opts, js: js}
	storage := jetstream.FileStorage
	if err := retry(ctx, func(ctx context.Context) error {
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        StreamName,
			Description: "golora training jobs",
			Subjects:    []string{SubjectPrefix + ">"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     storage,
			Replicas:    opts.Replicas,
			Duplicates:  10 * time.Minute,
		})
		return err
	}); err != nil {
		return nil, fmt.Errorf("jobs: stream %s: %w", StreamName, err)
	}
	if err := retry(ctx, func(ctx context.Context) (err error) {
		c.consumer, err = js.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
			Durable:       ConsumerName,
			Description:   "golora workers",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       opts.AckWait,
			MaxDeliver:    opts.MaxDeliver,
			MaxAckPending: 10000,
			Replicas:      opts.Replicas,
		})
		return err
	}); err != nil {
		return nil, fmt.Errorf("jobs: consumer %s: %w", ConsumerName, err)
	}
	kv := func(bucket, what string, history uint8) (jetstream.KeyValue, error) {
		var b jetstream.KeyValue
		err := retry(ctx, func(ctx context.Context) (err error) {
			b, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: bucket, Description: what, History: history, Storage: storage, Replicas: opts.Replicas,
			})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("jobs: key-value bucket %s: %w", bucket, err)
		}
		return b, nil
	}
	obj := func(bucket, what string) (jetstream.ObjectStore, error) {
		var b jetstream.ObjectStore
		err := retry(ctx, func(ctx context.Context) (err error) {
			b, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
				Bucket: bucket, Description: what, Storage: storage, Replicas: opts.Replicas,
			})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("jobs: object store %s: %w", bucket, err)
		}
		return b, nil
	}
	if c.status, err = kv(StatusBucket, "golora job states", 1); err != nil {
		return nil, err
	}
	if c.index, err = kv(AdapterIndexBucket, "golora adapter versions", indexHistory); err != nil {
		return nil, err
	}
	if c.work, err = obj(WorkBucket, "golora training data and checkpoints"); err != nil {
		return nil, err
	}
	if c.files, err = obj(AdapterFileBucket, "golora adapter files"); err != nil {
		return nil, err
	}
	return c, nil
}

// Open returns a Client using the stream, consumer and buckets an earlier
// Setup created, as they are: the workers' settings (AckWait, MaxDeliver)
// stay what Setup made them. The error wraps ErrNotSetUp when one is
// missing.
func Open(ctx context.Context, nc *nats.Conn) (*Client, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	c := &Client{js: js}
	err = retry(ctx, func(ctx context.Context) (err error) {
		if c.consumer, err = js.Consumer(ctx, StreamName, ConsumerName); err != nil {
			return err
		}
		if c.status, err = js.KeyValue(ctx, StatusBucket); err != nil {
			return err
		}
		if c.index, err = js.KeyValue(ctx, AdapterIndexBucket); err != nil {
			return err
		}
		if c.work, err = js.ObjectStore(ctx, WorkBucket); err != nil {
			return err
		}
		c.files, err = js.ObjectStore(ctx, AdapterFileBucket)
		return err
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("jobs: %w (%w)", ErrNotSetUp, err)
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	cfg := c.consumer.CachedInfo().Config
	c.opts = Options{Replicas: cfg.Replicas, AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver}.withDefaults()
	return c, nil
}

// ErrNotSetUp is returned (wrapped) by Open when Setup has not created the
// stream, consumer or buckets yet.
var ErrNotSetUp = errors.New("the job stream and buckets are not set up")

// TrainSettings are the training settings a Job carries: the fields of
// train.Config that describe the optimization. Zero fields take
// train.DefaultConfig's values, except the booleans and the ones whose zero
// is meaningful (WarmupSteps, MinLR, WeightDecay, MaxGradNorm, EvalEvery,
// Seed), which are used as given.
type TrainSettings struct {
	Steps       int     `json:"steps"`
	BatchSize   int     `json:"batch_size"`
	SeqLen      int     `json:"seq_len"`
	GradAccum   int     `json:"grad_accum,omitempty"`
	LR          float64 `json:"lr"`
	WarmupSteps int     `json:"warmup_steps,omitempty"`
	WarmupRatio float64 `json:"warmup_ratio,omitempty"`
	Cosine      bool    `json:"cosine,omitempty"`
	MinLR       float64 `json:"min_lr,omitempty"`
	WeightDecay float64 `json:"weight_decay,omitempty"`
	MaxGradNorm float64 `json:"max_grad_norm"`
	EvalEvery   int     `json:"eval_every,omitempty"`
	// CheckpointEvery is the number of steps between checkpoints, each
	// uploaded to the object store; 0 lets the worker choose.
	CheckpointEvery int    `json:"checkpoint_every,omitempty"`
	Seed            uint64 `json:"seed"`
	Pack            bool   `json:"pack,omitempty"`
	// EvalSplit is the fraction of the data held out for evaluation.
	EvalSplit float64 `json:"eval_split,omitempty"`
}

// DefaultTrainSettings returns train.DefaultConfig's settings with seed 1.
func DefaultTrainSettings() TrainSettings {
	s := SettingsOf(train.DefaultConfig())
	s.Seed = 1
	return s
}

// SettingsOf returns the optimization settings of c (all but EvalSplit and
// CheckpointEvery, which a job sets itself), the inverse of what a worker
// trains with.
func SettingsOf(c train.Config) TrainSettings {
	return TrainSettings{
		Steps: c.Steps, BatchSize: c.BatchSize, SeqLen: c.SeqLen, GradAccum: c.GradAccum, LR: c.LR,
		WarmupSteps: c.WarmupSteps, WarmupRatio: c.WarmupRatio, Cosine: c.Cosine, MinLR: c.MinLR,
		WeightDecay: c.WeightDecay, MaxGradNorm: c.MaxGradNorm, EvalEvery: c.EvalEvery, Seed: c.Seed, Pack: c.Pack,
	}
}

// config returns the train.Config of s writing to outDir.
func (s TrainSettings) config(outDir string, checkpointEvery int) train.Config {
	c := train.DefaultConfig()
	set := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	set(&c.Steps, s.Steps)
	set(&c.BatchSize, s.BatchSize)
	set(&c.SeqLen, s.SeqLen)
	set(&c.GradAccum, s.GradAccum)
	if s.LR != 0 {
		c.LR = s.LR
	}
	if s.WarmupRatio != 0 {
		c.WarmupRatio = s.WarmupRatio
	}
	c.WarmupSteps, c.Cosine, c.MinLR, c.WeightDecay, c.MaxGradNorm = s.WarmupSteps, s.Cosine, s.MinLR, s.WeightDecay, s.MaxGradNorm
	c.EvalEvery, c.Seed, c.Pack = s.EvalEvery, s.Seed, s.Pack
	c.CheckpointEvery = checkpointEvery
	if s.CheckpointEvery > 0 {
		c.CheckpointEvery = s.CheckpointEvery
	}
	c.OutDir = outDir
	return c
}

// Job is a training job: which adapter to train on which base with which
// settings. Submit fills ID, Data and Submitted.
type Job struct {
	ID string `json:"id"`
	// Adapter names the adapter the job produces a new version of: 1 to 64
	// letters, digits, '_' or '-'.
	Adapter string `json:"adapter"`
	// Base is the base model's id; workers know EmbeddedBase.
	Base string `json:"base"`
	// Quantize is how workers hold the frozen base: "nf4" (QLoRA, the
	// default when empty) or "none".
	Quantize string      `json:"quantize,omitempty"`
	LoRA     lora.Config `json:"lora"`
	// Train holds the optimization settings; the worker chooses the output
	// directory.
	Train TrainSettings `json:"train"`
	// Data is the name of the training data (JSONL as for golora train) in
	// the work object store.
	Data      string    `json:"data"`
	Submitted time.Time `json:"submitted"`
}

var adapterName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func checkAdapterName(name string) error {
	if !adapterName.MatchString(name) {
		return fmt.Errorf("jobs: adapter name %q: want 1 to 64 letters, digits, '_' or '-'", name)
	}
	return nil
}

// validate checks what can be checked without the base model and the data.
func (j *Job) validate() error {
	if err := checkAdapterName(j.Adapter); err != nil {
		return err
	}
	if j.Base == "" {
		return errors.New("jobs: job has no base model")
	}
	switch j.Quantize {
	case "", "nf4", "none":
	default:
		return fmt.Errorf("jobs: job quantize %q: want nf4 or none", j.Quantize)
	}
	if err := j.LoRA.Validate(); err != nil {
		return fmt.Errorf("jobs: job LoRA config: %w", err)
	}
	// The worker chooses the output directory; any name validates.
	cfg := j.Train.config("out", 0)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("jobs: job training settings: %w", err)
	}
	if j.Train.CheckpointEvery < 0 {
		return fmt.Errorf("jobs: job checkpoint interval %d is negative", j.Train.CheckpointEvery)
	}
	if !(j.Train.EvalSplit >= 0 && j.Train.EvalSplit < 1) {
		return fmt.Errorf("jobs: job eval split %v: want a fraction in [0, 1)", j.Train.EvalSplit)
	}
	return nil
}

// State is where a job is in its life.
type State string

// The states of a job: queued → running → done or failed. A running job
// whose worker dies stays running until another worker takes it over.
const (
	Queued  State = "queued"
	Running State = "running"
	Done    State = "done"
	Failed  State = "failed"
)

// Status is a job's state as kept in the status bucket.
type Status struct {
	ID      string `json:"id"`
	Adapter string `json:"adapter"`
	State   State  `json:"state"`
	// Step and Steps are the training progress; Loss is the last step's
	// training loss.
	Step  int     `json:"step"`
	Steps int     `json:"steps"`
	Loss  float64 `json:"loss,omitempty"`
	// Error says why a failed job failed.
	Error string `json:"error,omitempty"`
	// Version is the adapter version the job produces, allocated when
	// training has finished.
	Version int `json:"version,omitempty"`
	// Worker is the worker that ran (or runs) the job and Attempts the
	// number of deliveries so far.
	Worker   string `json:"worker,omitempty"`
	Attempts int    `json:"attempts"`
	// Checkpoint is the last checkpoint uploaded to the work store.
	Checkpoint *CheckpointRef `json:"checkpoint,omitempty"`
	// ResumedFrom is the step the last attempt resumed from (0: the start).
	ResumedFrom int       `json:"resumed_from,omitempty"`
	Submitted   time.Time `json:"submitted"`
	Started     time.Time `json:"started,omitzero"`
	Finished    time.Time `json:"finished,omitzero"`
}

// CheckpointRef names an uploaded checkpoint: the files of train's
// checkpoint directory under ID/checkpoint/STEP/ in the work store.
type CheckpointRef struct {
	Step  int      `json:"step"`
	Files []string `json:"files"`
}

func checkpointObject(id string, step int, file string) string {
	return fmt.Sprintf("%s/checkpoint/%d/%s", id, step, file)
}

// Submit stores data (JSONL training data) in the work store, records the
// job as queued and publishes it. It fills in job's ID (when empty), Data and
// Submitted and returns the job as submitted.
func (c *Client) Submit(ctx context.Context, job Job, data []byte) (Job, error) {
	if job.ID == "" {
		job.ID = nuid.Next()
	}
	if strings.ContainsAny(job.ID, ".*>/ \t") {
		return Job{}, fmt.Errorf("jobs: job id %q: must not contain '.', '*', '>', '/' or spaces", job.ID)
	}
	if err := job.validate(); err != nil {
		return Job{}, err
	}
	if len(data) == 0 {
		return Job{}, fmt.Errorf("jobs: job %s: no training data", job.ID)
	}
	job.Data = job.ID + "/data.jsonl"
	job.Submitted = time.Now().UTC()
	if _, err := putObject(ctx, c.work, job.Data, data); err != nil {
		return Job{}, fmt.Errorf("jobs: job %s: storing the data: %w", job.ID, err)
	}
	st := Status{ID: job.ID, Adapter: job.Adapter, State: Queued, Steps: job.Train.config("", 0).Steps, Submitted: job.Submitted}
	js, err := json.Marshal(st)
	if err != nil {
		return Job{}, fmt.Errorf("jobs: job %s: %w", job.ID, err)
	}
	if _, err := casPut(ctx, c.status, job.ID, js, 0); err != nil {
		return Job{}, fmt.Errorf("jobs: job %s: recording its state: %w", job.ID, err)
	}
	msg, err := json.Marshal(job)
	if err != nil {
		return Job{}, fmt.Errorf("jobs: job %s: %w", job.ID, err)
	}
	// The message id makes a retried publish of the same job a no-op.
	if err := retry(ctx, func(ctx context.Context) error {
		_, err := c.js.Publish(ctx, SubjectPrefix+job.ID, msg, jetstream.WithMsgID(job.ID))
		return err
	}); err != nil {
		return Job{}, fmt.Errorf("jobs: job %s: publishing: %w", job.ID, err)
	}
	return job, nil
}

// Status returns the state of job id.
func (c *Client) Status(ctx context.Context, id string) (Status, error) {
	st, _, err := c.getStatus(ctx, id)
	return st, err
}

func (c *Client) getStatus(ctx context.Context, id string) (Status, uint64, error) {
	e, err := kvGet(ctx, c.status, id)
	if err != nil {
		return Status{}, 0, fmt.Errorf("jobs: job %s: %w", id, err)
	}
	var st Status
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return Status{}, 0, fmt.Errorf("jobs: job %s: state: %w", id, err)
	}
	return st, e.Revision(), nil
}

// List returns the state of every job, oldest first.
func (c *Client) List(ctx context.Context) ([]Status, error) {
	keys, err := c.status.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("jobs: listing jobs: %w", err)
	}
	var out []Status
	for id := range keys.Keys() {
		st, err := c.Status(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b Status) int {
		if c := a.Submitted.Compare(b.Submitted); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Pending returns the number of jobs in the stream: queued or being worked
// on, not yet acknowledged.
func (c *Client) Pending(ctx context.Context) (uint64, error) {
	var info *jetstream.StreamInfo
	err := retry(ctx, func(ctx context.Context) error {
		s, err := c.js.Stream(ctx, StreamName)
		if err == nil {
			info, err = s.Info(ctx)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("jobs: %w", err)
	}
	return info.State.Msgs, nil
}
