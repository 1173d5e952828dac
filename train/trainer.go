package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/golora/golora/internal/dirlock"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/lora/loragraph"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/graph"
	"github.com/golora/golora/quant"
	"github.com/golora/golora/quant/ggml"
)

// Config says how to train. Start from DefaultConfig, which holds the QLoRA
// paper's recipe (Dettmers et al. 2023, appendix B.2): AdamW with learning
// rate 2e-4, no weight decay, gradients clipped to a global norm of 0.3, a
// constant schedule after a linear warmup over 3 % of the steps. The paper's
// adapter settings (r 64, alpha 16, dropout 0.1 on models up to 13B, on every
// linear layer of the blocks) belong to lora.Config: the dropout applied in
// training is the adapter's Config.Dropout.
type Config struct {
	// Steps is the number of optimizer steps.
	Steps int
	// BatchSize and SeqLen are the shape of a micro-batch: BatchSize rows of
	// SeqLen tokens. The graph is built once for this shape; evaluation
	// batches are padded to it.
	BatchSize, SeqLen int
	// GradAccum is the number of micro-batches whose gradients are averaged
	// into one step (0 means 1).
	GradAccum int

	// LR is the learning rate after warmup.
	LR float64
	// WarmupSteps, if positive, is the number of steps of linear warmup;
	// otherwise WarmupRatio·Steps, rounded up (as Hugging Face's Trainer
	// does).
	WarmupSteps int
	WarmupRatio float64
	// Cosine decays the learning rate from LR after warmup to MinLR at the
	// last step; otherwise it stays constant.
	Cosine bool
	MinLR  float64
	// WeightDecay is AdamW's decoupled weight decay.
	WeightDecay float64
	// MaxGradNorm clips the global L2 norm of the gradients; 0 disables
	// clipping.
	MaxGradNorm float64

	// EvalEvery, if positive, evaluates the held-out examples every so many
	// steps; they are evaluated after the last step in any case.
	EvalEvery int
	// CheckpointEvery, if positive, writes a checkpoint every so many steps,
	// after the last step and when training is cancelled. It needs OutDir.
	CheckpointEvery int
	// LogEvery is the number of steps between progress lines when the
	// progress writer is not a terminal; 0 means about twenty lines per run.
	LogEvery int

	// Seed drives the data order and the dropout masks.
	Seed uint64
	// Pack concatenates the examples and cuts rows of SeqLen tokens from the
	// stream; otherwise each example is one row, truncated or padded.
	Pack bool
	// PadToken is the input id of padding positions (they have no target).
	PadToken int

	// OutDir receives metrics.jsonl, the checkpoint (OutDir/checkpoint/),
	// the trained adapter in PEFT's format and loss.png. Empty means no
	// files are written.
	OutDir string

	// Progress, if not nil, shows progress: a self-updating bar with the
	// loss, tokens/s and the time left when it is a terminal, plain log
	// lines otherwise. nil prints nothing.
	Progress io.Writer
	// OnStep, if not nil, is called after every step and every evaluation
	// with the metric just recorded, before any checkpoint of that step is
	// written.
	OnStep func(Metric)
}

// DefaultConfig returns the QLoRA paper's optimizer settings (see Config) for
// 1,000 steps of 4 × 128-token batches. The fields it leaves zero are off:
// no cosine decay, no weight decay, no periodic evaluation, checkpoints or
// files, seed 0, no packing, padding with token 0, no progress output and no
// step callback.
func DefaultConfig() Config {
	return Config{
		Steps: 1000, BatchSize: 4, SeqLen: 128, GradAccum: 1,
		LR: 2e-4, WarmupRatio: 0.03, WeightDecay: 0, MaxGradNorm: 0.3,
	}
}

// Warmup returns the number of warmup steps: WarmupSteps if positive,
// otherwise ⌈WarmupRatio·Steps⌉.
func (c *Config) Warmup() int {
	if c.WarmupSteps > 0 {
		return c.WarmupSteps
	}
	return int(math.Ceil(c.WarmupRatio * float64(c.Steps)))
}

// schedule returns the learning-rate schedule c describes.
func (c *Config) schedule() schedule {
	return schedule{Peak: c.LR, Warmup: c.Warmup(), Total: c.Steps, Cosine: c.Cosine, Min: c.MinLR}
}

func (c *Config) gradAccum() int { return max(c.GradAccum, 1) }

// Validate reports the first field of c that is out of range.
func (c *Config) Validate() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case c.Steps < 1:
		return fmt.Errorf("train: config: Steps %d must be at least 1", c.Steps)
	case c.BatchSize < 1 || c.SeqLen < 1:
		return fmt.Errorf("train: config: BatchSize %d and SeqLen %d must be positive", c.BatchSize, c.SeqLen)
	case c.GradAccum < 0:
		return fmt.Errorf("train: config: GradAccum %d is negative", c.GradAccum)
	case !(c.LR > 0) || !finite(c.LR):
		return fmt.Errorf("train: config: LR %v must be positive and finite", c.LR)
	case c.WarmupSteps < 0 || !(c.WarmupRatio >= 0 && c.WarmupRatio <= 1):
		return fmt.Errorf("train: config: WarmupSteps %d must be non-negative and WarmupRatio %v in [0, 1]", c.WarmupSteps, c.WarmupRatio)
	case !(c.MinLR >= 0) || !finite(c.MinLR):
		return fmt.Errorf("train: config: MinLR %v must be non-negative and finite", c.MinLR)
	case !(c.WeightDecay >= 0) || !finite(c.WeightDecay):
		return fmt.Errorf("train: config: WeightDecay %v must be non-negative and finite", c.WeightDecay)
	case !(c.MaxGradNorm >= 0) || !finite(c.MaxGradNorm):
		return fmt.Errorf("train: config: MaxGradNorm %v must be non-negative and finite (0 disables clipping)", c.MaxGradNorm)
	case c.EvalEvery < 0 || c.CheckpointEvery < 0 || c.LogEvery < 0:
		return fmt.Errorf("train: config: EvalEvery %d, CheckpointEvery %d and LogEvery %d must be non-negative", c.EvalEvery, c.CheckpointEvery, c.LogEvery)
	case c.CheckpointEvery > 0 && c.OutDir == "":
		return errors.New("train: config: CheckpointEvery needs an OutDir")
	}
	return nil
}

// Trainer trains a LoRA adapter on a frozen base: one gorgonia graph of the
// base with the adapter's A and B as parameters, built for the configured
// batch shape, AdamW updating A and B in place. Make one with New, optionally
// Resume from a checkpoint, then Run (or drive Step yourself); Close it when
// done. A Trainer is not safe for concurrent use, and the base and adapter
// must not be used elsewhere while it runs (AddDelta between steps is fine).
type Trainer struct {
	cfg     Config
	adapter *lora.Adapter

	graph   *graph.Graph
	ga      *loragraph.Adapter
	params  []loragraph.Param
	opt     *adamW
	sched   schedule
	batcher *batcher
	evals   []*batch
	pcg     *rand.PCG // dropout masks; its state is checkpointed
	rng     *rand.Rand

	gradsBound bool // a backward pass has run, so gradient buffers exist

	lock *dirlock.Lock // on OutDir, held from New to Close

	done    bool          // the run finished and wrote its outputs
	step    int           // optimizer steps done
	tokens  int64         // positions run through the model in training
	elapsed time.Duration // time spent in steps, restored runs included
	hash    string        // fingerprint of what determines the trajectory
}

// dropoutStream separates the dropout generator from the data order, which
// is seeded with the same Config.Seed.
const dropoutStream = 0x64726f706f7574 // "dropout"

// New prepares training of adapter on base: it checks the configuration and
// the adapter against the base, cuts the examples into batches, builds the
// graph and its gradients. evalData may be empty (no evaluation). The base
// weights are only read. With an OutDir, New creates it, locks it for this
// Trainer until Close (a second Trainer or process on it fails at once,
// naming the holder) and removes what interrupted writes left there.
func New(base *model.Weights, adapter *lora.Adapter, trainData, evalData []Example, cfg Config) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if base == nil || adapter == nil {
		return nil, errors.New("train: New: nil base or adapter")
	}
	if err := adapter.Check(base); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if cfg.PadToken < 0 || cfg.PadToken >= base.Config.VocabSize {
		return nil, fmt.Errorf("train: config: PadToken %d is outside the vocabulary [0, %d)", cfg.PadToken, base.Config.VocabSize)
	}
	if err := checkExamples("training", trainData, base.Config.VocabSize); err != nil {
		return nil, err
	}
	if err := checkExamples("evaluation", evalData, base.Config.VocabSize); err != nil {
		return nil, err
	}
	bopts := batchOptions{Size: cfg.BatchSize, SeqLen: cfg.SeqLen, Pack: cfg.Pack, Pad: cfg.PadToken, Seed: cfg.Seed}
	batcher, err := newBatcher(trainData, bopts)
	if err != nil {
		return nil, err
	}
	t := &Trainer{
		cfg:     cfg,
		adapter: adapter,
		opt:     newAdamW(cfg.WeightDecay),
		sched:   cfg.schedule(),
		batcher: batcher,
		pcg:     rand.NewPCG(cfg.Seed, dropoutStream),
	}
	t.rng = rand.New(t.pcg)
	if len(evalData) > 0 {
		eb, err := newBatcher(evalData, bopts)
		if err != nil {
			return nil, err
		}
		t.evals = eb.Batches()
	}
	if t.hash, err = configHash(&cfg, base, adapter, trainData); err != nil {
		return nil, err
	}
	if err := t.buildGraph(base); err != nil {
		return nil, err
	}
	if cfg.OutDir != "" {
		if t.lock, err = openRunDir(cfg.OutDir); err != nil {
			t.graph.Close()
			return nil, err
		}
	}
	return t, nil
}

// buildGraph builds the training graph of base with t's adapter and its
// gradients.
func (t *Trainer) buildGraph(base *model.Weights) error {
	var err error
	if t.ga, err = loragraph.New(t.adapter); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if t.graph, err = graph.New(base, graph.Options{Batch: t.cfg.BatchSize, SeqLen: t.cfg.SeqLen, Adapter: t.ga}); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if t.params, err = t.ga.Params(); err != nil {
		t.graph.Close()
		return fmt.Errorf("train: %w", err)
	}
	nodes, err := t.ga.Nodes()
	if err == nil {
		_, err = t.graph.Differentiate(nodes...)
	}
	if err != nil {
		t.graph.Close()
		return fmt.Errorf("train: %w", err)
	}
	return nil
}

// checkExamples refuses examples the batcher would turn into out-of-range
// inputs, naming the example.
func checkExamples(what string, exs []Example, vocab int) error {
	for i, ex := range exs {
		if len(ex.Loss) != len(ex.Tokens) {
			return fmt.Errorf("train: %s example %d: %d tokens but %d loss flags", what, i, len(ex.Tokens), len(ex.Loss))
		}
		for j, id := range ex.Tokens {
			if id < 0 || id >= vocab {
				return fmt.Errorf("train: %s example %d: token %d = %d is outside the vocabulary [0, %d)", what, i, j, id, vocab)
			}
		}
	}
	return nil
}

// configHash fingerprints everything that determines the sequence of updates,
// so that a checkpoint is only resumed by the run that wrote it: the
// optimizer settings, the batch shape, the seed, the adapter's configuration,
// the base's shape and quantization and the training tokens. Logging and checkpoint settings
// are left out, and so are the base's weights, which would take a pass over
// the whole model to hash.
func configHash(cfg *Config, base *model.Weights, adapter *lora.Adapter, data []Example) (string, error) {
	adapterCfg, err := json.Marshal(adapter.Config)
	if err != nil {
		return "", fmt.Errorf("train: %w", err)
	}
	key := struct {
		Steps, BatchSize, SeqLen, GradAccum int
		Schedule                            schedule
		WeightDecay, MaxGradNorm            float64
		Seed                                uint64
		Pack                                bool
		PadToken                            int
		Model                               model.Config
		Adapter                             json.RawMessage
		Quantized                           *baseQuantization `json:",omitempty"`
	}{cfg.Steps, cfg.BatchSize, cfg.SeqLen, cfg.gradAccum(), cfg.schedule(), cfg.WeightDecay, cfg.MaxGradNorm,
		cfg.Seed, cfg.Pack, cfg.PadToken, base.Config, adapterCfg, quantization(base)}
	js, err := json.Marshal(key)
	if err != nil {
		return "", fmt.Errorf("train: %w", err)
	}
	h := sha256.New()
	h.Write(js)
	var buf [9]byte
	for _, ex := range data {
		binary.LittleEndian.PutUint64(buf[:8], uint64(len(ex.Tokens)))
		h.Write(buf[:8])
		for i, id := range ex.Tokens {
			binary.LittleEndian.PutUint64(buf[:8], uint64(id))
			buf[8] = 0
			if ex.Loss[i] {
				buf[8] = 1
			}
			h.Write(buf[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// baseQuantization is how a base's linears are held, for configHash: a
// resumed run on a base quantized otherwise would follow another trajectory.
type baseQuantization struct {
	Formats []string // per linear, "" for float32
	Bytes   int64    // the linears' storage
}

// quantization returns how base's linears are quantized, nil when none is.
// A 16-bit head (quant.Half) counts as float: it holds the checkpoint's
// values exactly, as the float32 head of a run before golora kept it
// 16-bit did, so such a run resumes. So does a GGUF's block-quantized head
// (ggml.Matrix), which golora dequantized to float32 before it kept the
// blocks: the same values.
func quantization(base *model.Weights) *baseQuantization {
	q := &baseQuantization{}
	quantized := false
	for _, lin := range append(base.Linears(), base.Output) {
		if lin == nil || lin.Quantized == nil || isHalf(lin.Quantized) || lin == base.Output && isGGML(lin.Quantized) {
			q.Formats = append(q.Formats, "")
			continue
		}
		quantized = true
		q.Formats = append(q.Formats, lin.Quantized.Format())
		q.Bytes += lin.Quantized.StorageBytes()
	}
	if !quantized {
		return nil
	}
	return q
}

// isGGML reports whether m holds a GGUF's ggml blocks (ggml.Matrix).
func isGGML(m quant.Matrix) bool {
	_, ok := m.(*ggml.Matrix)
	return ok
}

// isHalf reports whether m is a 16-bit float matrix (quant.Half).
func isHalf(m quant.Matrix) bool {
	_, ok := m.(*quant.Half)
	return ok
}

// Steps returns the number of optimizer steps done (restored ones included).
func (t *Trainer) Steps() int { return t.step }

// Adapter returns the adapter being trained; its A and B hold the values of
// the last step.
func (t *Trainer) Adapter() *lora.Adapter { return t.adapter }

// Close releases the graph and the lock on OutDir. The adapter keeps its
// trained values.
func (t *Trainer) Close() error {
	return errors.Join(t.graph.Close(), t.lock.Release())
}

// NonFiniteError reports a NaN or infinite loss or gradient. Training stops
// without applying the step, so the adapter and the last checkpoint hold the
// last good values.
type NonFiniteError struct {
	Step  int    // the step (1-based) that failed
	What  string // "loss" or "gradient norm"
	Value float64
}

// Error implements error.
func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("train: step %d: %s is %v; the step was not applied", e.Step, e.What, e.Value)
}

// Step runs one optimizer step: GradAccum micro-batches forward and
// backward, their gradients averaged, clipped to MaxGradNorm, and one AdamW
// update of A and B at the scheduled learning rate. It returns the step's
// metric (no evaluation, no files). On error nothing is updated: the data
// order and dropout generator are rewound to the start of the step, so a
// cancelled step can be run again.
func (t *Trainer) Step(ctx context.Context) (Metric, error) {
	if t.step >= t.cfg.Steps {
		return Metric{}, fmt.Errorf("train: all %d steps are done", t.cfg.Steps)
	}
	start := time.Now()
	batcherState := t.batcher.State()
	rngState, err := t.pcg.MarshalBinary()
	if err != nil {
		return Metric{}, fmt.Errorf("train: %w", err)
	}
	m, err := t.step1(ctx)
	if err != nil {
		if rerr := t.batcher.SetState(batcherState); rerr != nil {
			return Metric{}, errors.Join(err, rerr)
		}
		if rerr := t.pcg.UnmarshalBinary(rngState); rerr != nil {
			return Metric{}, errors.Join(err, rerr)
		}
		return Metric{}, err
	}
	dur := time.Since(start)
	t.elapsed += dur
	t.step++
	positions := int64(t.cfg.gradAccum() * t.cfg.BatchSize * t.cfg.SeqLen)
	t.tokens += positions
	m.Step = t.step
	m.Tokens = t.tokens
	m.TokensPerSec = float64(positions) / dur.Seconds()
	m.ElapsedSec = t.elapsed.Seconds()
	return m, nil
}

// step1 is Step without the bookkeeping.
func (t *Trainer) step1(ctx context.Context) (Metric, error) {
	stepNo := t.step + 1
	// gorgonia adds each run's gradient to what the buffers hold; they
	// exist once a backward pass has run.
	if t.gradsBound {
		for _, p := range t.params {
			g, err := p.Grad()
			if err != nil {
				return Metric{}, fmt.Errorf("train: step %d: %w", stepNo, err)
			}
			clear(g)
		}
	}
	accum := t.cfg.gradAccum()
	var lossSum float64
	for k := range accum {
		b := t.batcher.Next()
		if err := t.graph.SetBatch(b.Inputs, b.Targets); err != nil {
			return Metric{}, fmt.Errorf("train: step %d: %w", stepNo, err)
		}
		t.ga.SampleDropout(t.rng)
		// Each run adds its gradient to the previous ones: the sum over
		// micro-batches wanted here.
		loss, err := t.graph.ForwardBackward(ctx)
		if err != nil {
			return Metric{}, fmt.Errorf("train: step %d, micro-batch %d: %w", stepNo, k+1, err)
		}
		t.gradsBound = true
		if l := float64(loss); math.IsNaN(l) || math.IsInf(l, 0) {
			return Metric{}, &NonFiniteError{Step: stepNo, What: "loss", Value: l}
		}
		lossSum += float64(loss)
	}
	ps := make([]param, len(t.params))
	for i, p := range t.params {
		g, err := p.Grad()
		if err != nil {
			return Metric{}, fmt.Errorf("train: step %d: %w", stepNo, err)
		}
		ps[i] = param{Name: p.Name, Value: p.Value, Grad: g}
	}
	if accum > 1 {
		inv := float32(1 / float64(accum))
		for _, p := range ps {
			for j := range p.Grad {
				p.Grad[j] *= inv
			}
		}
	}
	norm := clipGradNorm(ps, t.cfg.MaxGradNorm)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return Metric{}, &NonFiniteError{Step: stepNo, What: "gradient norm", Value: norm}
	}
	lr := t.sched.At(t.step)
	if err := t.opt.Step(ps, lr); err != nil {
		return Metric{}, fmt.Errorf("train: step %d: %w", stepNo, err)
	}
	return Metric{Loss: lossSum / float64(accum), LR: lr, GradNorm: norm}, nil
}

// Evaluate returns the mean loss per target token over the held-out
// examples, with dropout off, and its perplexity exp(loss). It returns
// ok = false when there are no evaluation examples or none has a target.
func (t *Trainer) Evaluate(ctx context.Context) (loss, perplexity float64, ok bool, err error) {
	t.ga.DisableDropout()
	loss, n, err := meanLoss(ctx, t.graph, t.evals)
	if err != nil {
		return 0, 0, false, fmt.Errorf("train: evaluation %w", err)
	}
	if n == 0 {
		return 0, 0, false, nil
	}
	return loss, math.Exp(loss), true, nil
}

// Result summarizes a finished run.
type Result struct {
	Steps     int     // optimizer steps done in all
	TrainLoss float64 // loss of the last step
	// EvalLoss and EvalPerplexity are those of the final evaluation; NaN
	// without evaluation examples.
	EvalLoss, EvalPerplexity float64
	Tokens                   int64         // positions run through the model in training, padding included
	Elapsed                  time.Duration // training time, resumed runs included
}

// Run trains until Config.Steps steps are done: it logs every step to
// OutDir/metrics.jsonl, evaluates every EvalEvery steps and at the end,
// writes a checkpoint every CheckpointEvery steps, and finally saves the
// adapter in PEFT's format to OutDir (lora.Save) and plots the losses to
// OutDir/loss.png.
//
// Cancelling ctx stops training between steps (a step in progress is
// abandoned and rewound); a checkpoint is written first when checkpoints are
// configured, and the error wraps ctx.Err(). A NaN or infinite loss or
// gradient stops training with a *NonFiniteError; no checkpoint is written
// then, so the last one holds the last good state.
func (t *Trainer) Run(ctx context.Context) (*Result, error) {
	r, err := t.startRun()
	if err != nil {
		return nil, err
	}
	defer r.close()
	for t.step < t.cfg.Steps {
		if err := r.trainStep(ctx); err != nil {
			return nil, err
		}
	}
	if err := r.evaluate(ctx); err != nil {
		return nil, r.stopIfCancelled(ctx, err)
	}
	if err := r.finish(); err != nil {
		return nil, err
	}
	if t.cfg.CheckpointEvery > 0 {
		// Marks the run finished: a resume of it changes nothing, while a
		// run killed before this point resumes and writes its outputs.
		t.done = true
		if err := t.SaveCheckpoint(); err != nil {
			return nil, err
		}
	}
	r.res.Steps, r.res.Tokens, r.res.Elapsed = t.step, t.tokens, t.elapsed
	return r.res, nil
}

// run is the state of one Trainer.Run: its outputs and what it has done.
type run struct {
	t            *Trainer
	metrics      *metricsWriter // nil without OutDir
	prog         *progress
	res          *Result
	checkpointed int // the step of the last checkpoint written, -1 before
}

// startRun opens the run's outputs: the output directory, its metrics file
// and the progress display.
func (t *Trainer) startRun() (*run, error) {
	if t.done {
		return nil, fmt.Errorf("%w (%d of %d)", ErrFinished, t.step, t.cfg.Steps)
	}
	r := &run{t: t, res: &Result{EvalLoss: math.NaN(), EvalPerplexity: math.NaN()}, checkpointed: -1}
	if t.cfg.OutDir != "" {
		var err error
		if r.metrics, err = openMetrics(filepath.Join(t.cfg.OutDir, MetricsFile), t.step, t.step == t.cfg.Steps); err != nil {
			return nil, err
		}
	}
	r.prog = newProgress(t.cfg.Progress, t.cfg.Steps, t.cfg.LogEvery)
	r.prog.start(t.step)
	return r, nil
}

// close ends the progress display and closes the metrics file if finish
// has not.
func (r *run) close() {
	r.prog.finish()
	if r.metrics != nil {
		r.metrics.Close()
	}
}

// record passes m to the step callback and the metrics file.
func (r *run) record(m Metric) error {
	if r.t.cfg.OnStep != nil {
		r.t.cfg.OnStep(m)
	}
	if r.metrics != nil {
		return r.metrics.Write(m)
	}
	return nil
}

// trainStep runs one step and what follows it: its record, an evaluation
// and a checkpoint when they are due.
func (r *run) trainStep(ctx context.Context) error {
	t := r.t
	if err := ctx.Err(); err != nil {
		return r.stop(err)
	}
	m, err := t.Step(ctx)
	if err != nil {
		if ctx.Err() != nil && !isNonFinite(err) {
			return r.stop(ctx.Err())
		}
		return err
	}
	r.res.TrainLoss = m.Loss
	if err := r.record(m); err != nil {
		return err
	}
	r.prog.step(m)
	last := t.step == t.cfg.Steps
	if !last && t.cfg.EvalEvery > 0 && t.step%t.cfg.EvalEvery == 0 {
		if err := r.evaluate(ctx); err != nil {
			return r.stopIfCancelled(ctx, err)
		}
	}
	if t.cfg.CheckpointEvery > 0 && (last || t.step%t.cfg.CheckpointEvery == 0) {
		if err := t.SaveCheckpoint(); err != nil {
			return err
		}
		r.checkpointed = t.step
	}
	return nil
}

// evaluate evaluates the held-out examples, if any, and records the result.
func (r *run) evaluate(ctx context.Context) error {
	t := r.t
	if len(t.evals) == 0 {
		return nil
	}
	loss, ppl, ok, err := t.Evaluate(ctx)
	if err != nil || !ok {
		return err
	}
	em := Metric{Step: t.step, EvalLoss: &loss, EvalPPL: &ppl, ElapsedSec: t.elapsed.Seconds()}
	r.res.EvalLoss, r.res.EvalPerplexity = loss, ppl
	r.prog.eval(em)
	return r.record(em)
}

// stopIfCancelled turns err into a stop when ctx was cancelled, and
// returns it unchanged otherwise.
func (r *run) stopIfCancelled(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return r.stop(ctx.Err())
	}
	return err
}

// stop ends a cancelled run: it checkpoints the steps done since the last
// checkpoint, when checkpoints are configured, and wraps cause.
func (r *run) stop(cause error) error {
	t := r.t
	if t.cfg.CheckpointEvery > 0 && t.step > 0 && r.checkpointed != t.step {
		if err := t.SaveCheckpoint(); err != nil {
			return errors.Join(cause, err)
		}
	}
	return fmt.Errorf("train: stopped after step %d: %w", t.step, cause)
}

// finish writes the outputs of a completed run: the adapter, the closed
// metrics file and the loss plot.
func (r *run) finish() error {
	t := r.t
	if t.cfg.OutDir == "" {
		return nil
	}
	if err := lora.Save(t.cfg.OutDir, t.adapter); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	err := r.metrics.Close()
	r.metrics = nil
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return plotLossFile(filepath.Join(t.cfg.OutDir, MetricsFile), filepath.Join(t.cfg.OutDir, LossPlotFile))
}

func isNonFinite(err error) bool {
	var nf *NonFiniteError
	return errors.As(err, &nf)
}

// Files a run writes in Config.OutDir, besides the adapter's own
// (lora.ConfigFile, lora.WeightsFile).
const (
	MetricsFile  = "metrics.jsonl"
	LossPlotFile = "loss.png"
)

// Train trains adapter on base with New and Run, resuming from the
// checkpoint in cfg.OutDir when there is one. adapter holds the trained
// values afterwards.
func Train(ctx context.Context, base *model.Weights, adapter *lora.Adapter, trainData, evalData []Example, cfg Config) (*Result, error) {
	t, err := New(base, adapter, trainData, evalData, cfg)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	if cfg.OutDir != "" {
		if err := t.Resume(); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return t.Run(ctx)
}
