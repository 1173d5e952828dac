package train

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/internal/testmodel"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/quant/ggml"
)

// testTrainConfig trains quickly on the tiny model.
func testTrainConfig(steps int, outDir string) Config {
	cfg := DefaultConfig()
	cfg.Steps = steps
	cfg.BatchSize, cfg.SeqLen = 2, 12
	cfg.LR = 1e-2
	cfg.WarmupRatio = 0.1
	cfg.MaxGradNorm = 1
	cfg.Seed = 7
	cfg.OutDir = outDir
	return cfg
}

func TestTrainLearnsAndWritesOutputs(t *testing.T) {
	base := syntheticBase(t, tinyConfig, 1, true)
	adapter := newAdapter(t, base, allLinear(4, 8, 0.05), 2)
	trainData := countingExamples(3, 24, 13, tinyConfig.VocabSize)
	evalData := countingExamples(4, 5, 13, tinyConfig.VocabSize)
	dir := t.TempDir()
	cfg := testTrainConfig(40, dir)
	cfg.EvalEvery = 10

	tr, err := New(base, adapter, trainData, evalData, cfg)
	require.NoError(t, err)
	defer tr.Close()
	before, _, ok, err := tr.Evaluate(context.Background())
	require.NoError(t, err)
	require.True(t, ok)
	var log bytes.Buffer
	tr.cfg.Progress = &log
	res, err := tr.Run(context.Background())
	require.NoError(t, err)
	t.Logf("eval loss %.4f → %.4f (perplexity %.3f), last train loss %.4f", before, res.EvalLoss, res.EvalPerplexity, res.TrainLoss)
	// The counting pattern is learnable: the held-out loss must at least
	// halve (ln 24 ≈ 3.18 is chance).
	require.Less(t, res.EvalLoss, before/2)
	require.InDelta(t, math.Exp(res.EvalLoss), res.EvalPerplexity, 1e-9*res.EvalPerplexity)
	require.Equal(t, 40, res.Steps)
	require.Equal(t, int64(40*2*12), res.Tokens)

	// metrics.jsonl: one line per step and one per evaluation (steps 10, 20,
	// 30 and the end).
	f, err := os.Open(filepath.Join(dir, MetricsFile))
	require.NoError(t, err)
	ms, err := readMetrics(f, MetricsFile)
	f.Close()
	require.NoError(t, err)
	require.Len(t, ms, 44)
	trainCurve, evalCurve := lossCurves(ms)
	require.Len(t, trainCurve, 40)
	require.Equal(t, []int{10, 20, 30, 40}, []int{evalCurve[0].Step, evalCurve[1].Step, evalCurve[2].Step, evalCurve[3].Step})
	require.Equal(t, res.EvalLoss, evalCurve[3].Loss)
	for i, m := range ms[:3] {
		require.Equal(t, i+1, m.Step)
		require.Positive(t, m.TokensPerSec)
		require.Equal(t, int64((i+1)*24), m.Tokens)
	}
	// Warmup over ⌈0.1·40⌉ = 4 steps, then constant.
	require.InDelta(t, cfg.LR/5, ms[0].LR, 1e-15)
	require.Equal(t, cfg.LR, ms[4].LR)

	// The adapter in PEFT format equals the trained one.
	loaded, err := lora.LoadFor(dir, base)
	require.NoError(t, err)
	want := adapterTensors(adapter)
	for name, ab := range adapterTensors(loaded) {
		require.True(t, testmodel.SameBits(ab[0], want[name][0]) && testmodel.SameBits(ab[1], want[name][1]), "saved %s differs", name)
	}
	require.Equal(t, 0.05, loaded.Config.Dropout)

	// loss.png is a real 800×500 PNG.
	pf, err := os.Open(filepath.Join(dir, LossPlotFile))
	require.NoError(t, err)
	img, err := png.Decode(pf)
	pf.Close()
	require.NoError(t, err)
	require.Equal(t, 800, img.Bounds().Dx())
	require.Equal(t, 500, img.Bounds().Dy())

	// Progress went to a buffer, not a terminal: plain lines after the
	// first step and every 2 steps (40/20), and one per evaluation.
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	require.Len(t, lines, 1+20+4)
	require.Contains(t, lines[0], "step 1/40  loss ")
	require.NotContains(t, log.String(), "\r", "terminal control characters in a log")
	require.Contains(t, log.String(), "step 40/40  eval loss ")
}

// TestResumeIsBitIdentical trains 8 steps straight and 8 steps with an
// interruption after step 3 (cancelled context, checkpoint, new Trainer,
// Resume). Everything that decides an update is restored exactly (float32
// tensors and moments, the data position, the dropout generator) and the
// computation is deterministic, so the adapters must agree bit for bit.
func TestResumeIsBitIdentical(t *testing.T) {
	for _, quantized := range []bool{false, true} {
		base := syntheticBase(t, tinyConfig, 11, quantized)
		// 5 rows of data in batches of 2 with accumulation 2: the data
		// order wraps into new epochs mid-step.
		data := countingExamples(12, 5, 13, tinyConfig.VocabSize)
		cfg := testTrainConfig(8, "")
		cfg.GradAccum = 2
		cfg.Cosine = true
		cfg.WeightDecay = 0.01

		straight := newAdapter(t, base, allLinear(4, 8, 0.1), 13)
		res, err := Train(context.Background(), base, straight, data, nil, cfg)
		require.NoError(t, err)
		require.Equal(t, 8, res.Steps)

		dir := t.TempDir()
		cfg.OutDir = dir
		cfg.CheckpointEvery = 5
		resumed := newAdapter(t, base, allLinear(4, 8, 0.1), 13)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stopAt3 := cfg
		stopAt3.OnStep = func(m Metric) {
			if m.Step == 3 {
				cancel()
			}
		}
		_, err = Train(ctx, base, resumed, data, nil, stopAt3)
		require.ErrorIs(t, err, context.Canceled)
		require.FileExists(t, CheckpointPath(dir))

		// A fresh adapter: everything must come from the checkpoint.
		fresh := newAdapter(t, base, allLinear(4, 8, 0.1), 99)
		tr, err := New(base, fresh, data, nil, cfg)
		require.NoError(t, err)
		require.NoError(t, tr.Resume())
		require.Equal(t, 3, tr.Steps())
		res, err = tr.Run(context.Background())
		require.NoError(t, err)
		tr.Close()
		require.Equal(t, 8, res.Steps)

		want := adapterTensors(straight)
		for name, ab := range adapterTensors(fresh) {
			require.True(t, testmodel.SameBits(ab[0], want[name][0]), "nf4 %t: %s A differs after resume", quantized, name)
			require.True(t, testmodel.SameBits(ab[1], want[name][1]), "nf4 %t: %s B differs after resume", quantized, name)
		}
		// And training did move the adapter.
		init := adapterTensors(newAdapter(t, base, allLinear(4, 8, 0.1), 13))
		q := "model.layers.0.self_attn.q_proj"
		require.False(t, testmodel.SameBits(init[q][1], want[q][1]), "B never changed")
	}
}

// TestNonFiniteLossStops corrupts an A value after step 3; step 4 must fail
// with an error naming it, without touching the checkpoint of step 2 or the
// adapter.
func TestNonFiniteLossStops(t *testing.T) {
	base := syntheticBase(t, tinyConfig, 21, true)
	adapter := newAdapter(t, base, allLinear(4, 8, 0), 22)
	data := countingExamples(23, 8, 13, tinyConfig.VocabSize)
	dir := t.TempDir()
	cfg := testTrainConfig(6, dir)
	cfg.CheckpointEvery = 2
	var checkpoint []byte
	var corrupted map[string][2][]float32
	cfg.OnStep = func(m Metric) {
		if m.Step == 3 {
			var err error
			checkpoint, err = os.ReadFile(CheckpointPath(dir))
			require.NoError(t, err)
			p, _ := adapter.Pair("model.layers.1.mlp.up_proj")
			p.A[5] = float32(math.NaN())
			corrupted = adapterTensors(adapter)
		}
	}
	_, err := Train(context.Background(), base, adapter, data, nil, cfg)
	var nf *NonFiniteError
	require.ErrorAs(t, err, &nf)
	require.Equal(t, 4, nf.Step)
	require.Equal(t, "loss", nf.What)
	require.ErrorContains(t, err, "step 4: loss is NaN")

	after, err := os.ReadFile(CheckpointPath(dir))
	require.NoError(t, err)
	require.Equal(t, checkpoint, after, "the checkpoint of step 2 changed")
	for name, ab := range adapterTensors(adapter) {
		// NaN ≠ NaN, so compare bits.
		require.True(t, testmodel.SameBits(ab[0], corrupted[name][0]) && testmodel.SameBits(ab[1], corrupted[name][1]), "%s was updated by the failed step", name)
	}
	_, err = os.Stat(filepath.Join(dir, lora.WeightsFile))
	require.ErrorIs(t, err, os.ErrNotExist, "a failed run saved the adapter")

	// The checkpoint is the good state of step 2 and resumes.
	fresh := newAdapter(t, base, allLinear(4, 8, 0), 22)
	tr, err := New(base, fresh, data, nil, cfg)
	require.NoError(t, err)
	defer tr.Close()
	require.NoError(t, tr.Resume())
	require.Equal(t, 2, tr.Steps())
}

// TestBaseUnchangedByTraining checks every bit of the base (float32 values,
// NF4 codes, scales and double-quantization state) before and after a run.
func TestBaseUnchangedByTraining(t *testing.T) {
	for _, quantized := range []bool{false, true} {
		base := syntheticBase(t, tinyConfig, 31, quantized)
		before := fingerprint(base)
		adapter := newAdapter(t, base, allLinear(4, 8, 0.1), 32)
		data := countingExamples(33, 6, 13, tinyConfig.VocabSize)
		_, err := Train(context.Background(), base, adapter, data, data[:2], testTrainConfig(5, ""))
		require.NoError(t, err)
		require.Equal(t, before, fingerprint(base), "nf4 %t: the base changed", quantized)
	}
	// The fingerprint does see a change in the packed NF4 codes.
	base := syntheticBase(t, tinyConfig, 31, true)
	before := fingerprint(base)
	base.Layers[0].Q.Quantized, base.Layers[1].Q.Quantized = base.Layers[1].Q.Quantized, base.Layers[0].Q.Quantized
	require.NotEqual(t, before, fingerprint(base))
}

// TestGradAccumAverages compares one batch of 4 rows with 4 accumulated
// micro-batches of 1 row over the same rows (the shuffled order does not
// depend on the batch size). Every token is a target and 25·13 = 12·27 + 1
// tokens pack into 27 full rows, so all rows have SeqLen targets, the mean
// of the micro-batch means is the batch mean, and the losses and gradient
// norms (unclipped) must agree up to float32 rounding. Two steps check that
// gradients do not leak from one step into the next.
func TestGradAccumAverages(t *testing.T) {
	base := syntheticBase(t, tinyConfig, 41, true)
	data := countingExamples(42, 25, 13, tinyConfig.VocabSize)
	for _, ex := range data {
		ex.Loss[0] = true
	}
	run := func(batch, accum int) []Metric {
		cfg := testTrainConfig(2, "")
		cfg.Pack = true
		cfg.BatchSize, cfg.GradAccum = batch, accum
		cfg.MaxGradNorm = 0
		var ms []Metric
		adapter := newAdapter(t, base, allLinear(4, 8, 0), 43)
		cfg.OnStep = func(m Metric) { ms = append(ms, m) }
		_, err := Train(context.Background(), base, adapter, data, nil, cfg)
		require.NoError(t, err)
		return ms
	}
	big, accumulated := run(4, 1), run(1, 4)
	require.Len(t, accumulated, 2)
	for i := range big {
		require.InDelta(t, big[i].Loss, accumulated[i].Loss, 1e-5*big[i].Loss, "step %d loss", i+1)
		require.InDelta(t, big[i].GradNorm, accumulated[i].GradNorm, 1e-4*big[i].GradNorm, "step %d gradient norm", i+1)
	}
}

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	require.NoError(t, good.Validate())
	require.Equal(t, 30, good.Warmup(), "⌈0.03·1000⌉")
	for _, bad := range []func(*Config){
		func(c *Config) { c.Steps = 0 },
		func(c *Config) { c.BatchSize = 0 },
		func(c *Config) { c.GradAccum = -1 },
		func(c *Config) { c.LR = 0 },
		func(c *Config) { c.LR = math.Inf(1) },
		func(c *Config) { c.WarmupRatio = 1.5 },
		func(c *Config) { c.MaxGradNorm = math.NaN() },
		func(c *Config) { c.WeightDecay = -1 },
		func(c *Config) { c.CheckpointEvery = 5 },
	} {
		c := DefaultConfig()
		bad(&c)
		require.Error(t, c.Validate(), "%+v", c)
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	base := syntheticBase(t, tinyConfig, 51, false)
	adapter := newAdapter(t, base, allLinear(2, 4, 0), 52)
	data := countingExamples(53, 4, 8, tinyConfig.VocabSize)
	cfg := testTrainConfig(2, "")

	bad := []Example{{Tokens: []int{1, 2, 99}, Loss: []bool{false, true, true}}}
	_, err := New(base, adapter, data, bad, cfg)
	require.ErrorContains(t, err, "evaluation example 0: token 2 = 99 is outside the vocabulary")

	long := cfg
	long.SeqLen = 64 // the model has 32 positions
	_, err = New(base, adapter, data, nil, long)
	require.ErrorContains(t, err, "exceeds the model's 32 positions")

	pad := cfg
	pad.PadToken = 24
	_, err = New(base, adapter, data, nil, pad)
	require.ErrorContains(t, err, "PadToken 24")

	other := syntheticBase(t, model.Config{Dim: 16, HiddenDim: 48, Layers: 2, Heads: 2, KVHeads: 2, HeadDim: 8, VocabSize: 24, MaxSeqLen: 32, NormEps: 1e-5, RopeTheta: 10000}, 54, false)
	_, err = New(other, adapter, data, nil, cfg)
	require.ErrorContains(t, err, "need a base weight of shape")
}

func TestResumeRefusesOtherRuns(t *testing.T) {
	base := syntheticBase(t, tinyConfig, 61, false)
	data := countingExamples(62, 6, 13, tinyConfig.VocabSize)
	dir := t.TempDir()
	cfg := testTrainConfig(3, dir)
	cfg.CheckpointEvery = 3

	tr, err := New(base, newAdapter(t, base, allLinear(4, 8, 0), 63), data, nil, cfg)
	require.NoError(t, err)
	require.ErrorIs(t, tr.Resume(), os.ErrNotExist)
	_, err = tr.Run(context.Background())
	require.NoError(t, err)
	tr.Close()

	for what, change := range map[string]func(c *Config, d *[]Example){
		"learning rate": func(c *Config, _ *[]Example) { c.LR *= 2 },
		"seed":          func(c *Config, _ *[]Example) { c.Seed++ },
		"data":          func(_ *Config, d *[]Example) { *d = (*d)[1:] },
	} {
		c, d := cfg, data
		change(&c, &d)
		adapter := newAdapter(t, base, allLinear(4, 8, 0), 63)
		tr, err := New(base, adapter, d, nil, c)
		require.NoError(t, err)
		err = tr.Resume()
		tr.Close()
		require.ErrorContains(t, err, "written by a run with other settings", what)
	}

	// Another rank: other tensor shapes, also another hash.
	tr, err = New(base, newAdapter(t, base, allLinear(2, 8, 0), 63), data, nil, cfg)
	require.NoError(t, err)
	require.Error(t, tr.Resume())
	tr.Close()

	// A damaged file is refused with the file's name and leaves the
	// trainer as it was.
	raw, err := os.ReadFile(CheckpointPath(dir))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(CheckpointPath(dir), raw[:len(raw)-10], 0o644))
	adapter := newAdapter(t, base, allLinear(4, 8, 0), 63)
	init := adapterTensors(adapter)
	tr, err = New(base, adapter, data, nil, cfg)
	require.NoError(t, err)
	defer tr.Close()
	err = tr.Resume()
	require.ErrorContains(t, err, CheckpointFile)
	require.Equal(t, 0, tr.Steps())
	for name, ab := range adapterTensors(adapter) {
		require.True(t, testmodel.SameBits(ab[0], init[name][0]) && testmodel.SameBits(ab[1], init[name][1]))
	}
}

func TestCheckpointTensors(t *testing.T) {
	base := syntheticBase(t, tinyConfig, 71, true)
	adapter := newAdapter(t, base, allLinear(4, 8, 0), 72)
	data := countingExamples(73, 6, 13, tinyConfig.VocabSize)
	dir := t.TempDir()
	cfg := testTrainConfig(2, dir)
	cfg.CheckpointEvery = 1
	_, err := Train(context.Background(), base, adapter, data, nil, cfg)
	require.NoError(t, err)

	// Only the last checkpoint is kept, with no temporary files beside it.
	entries, err := os.ReadDir(filepath.Join(dir, CheckpointDir))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	f, err := safetensors.Open(CheckpointPath(dir))
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, 3*2*len(adapter.Modules()), f.Len())
	p, _ := adapter.Pair("model.layers.0.self_attn.q_proj")
	tn, ok := f.Tensor("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")
	require.True(t, ok)
	got, err := tn.Float32s()
	require.NoError(t, err)
	require.True(t, testmodel.SameBits(got, p.B))
	require.Contains(t, f.Metadata()["state"], `"step":2`)
}

func TestTrainWithoutOutDirWritesNothing(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)
	base := syntheticBase(t, tinyConfig, 81, false)
	adapter := newAdapter(t, base, allLinear(2, 4, 0), 82)
	data := countingExamples(83, 4, 8, tinyConfig.VocabSize)
	res, err := Train(context.Background(), base, adapter, data, nil, testTrainConfig(2, ""))
	require.NoError(t, err)
	require.True(t, math.IsNaN(res.EvalLoss))
	entries, err := os.ReadDir(wd)
	require.NoError(t, err)
	require.Empty(t, entries)
}

func TestCancelledBeforeFirstStep(t *testing.T) {
	base := syntheticBase(t, tinyConfig, 91, false)
	adapter := newAdapter(t, base, allLinear(2, 4, 0), 92)
	data := countingExamples(93, 4, 8, tinyConfig.VocabSize)
	dir := t.TempDir()
	cfg := testTrainConfig(3, dir)
	cfg.CheckpointEvery = 1
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Train(ctx, base, adapter, data, nil, cfg)
	require.True(t, errors.Is(err, context.Canceled), "%v", err)
	_, err = os.Stat(CheckpointPath(dir))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing to checkpoint before the first step")
}

// TestProgressOnTerminal draws the terminal form into a buffer: one line
// rewritten in place, with a bar, the loss, tokens/s and the time left, and
// evaluation lines printed above it.
func TestProgressOnTerminal(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, 10, 0)
	// A descriptor that is not a terminal: GetSize fails and the width
	// falls back to 80 columns.
	p.fd = int(os.Stdin.Fd())
	p.start(0)
	loss, ppl := 2.5, math.Exp(2.5)
	for s := 1; s <= 10; s++ {
		p.drawn = time.Time{} // draw every step
		p.step(Metric{Step: s, Loss: 3, TokensPerSec: 1234})
		if s == 5 {
			p.eval(Metric{Step: 5, EvalLoss: &loss, EvalPPL: &ppl})
		}
	}
	p.finish()
	s := out.String()
	require.Equal(t, 10+1, strings.Count(s, "\x1b[K"), "one redraw per step and one evaluation line")
	require.Contains(t, s, "\rstep 5/10  eval loss 2.5000  perplexity 12.182\x1b[K\n")
	last := s[strings.LastIndex(s, "\r")+1:]
	require.True(t, strings.HasPrefix(last, "["+strings.Repeat("=", 10)), "%q", last)
	require.Contains(t, last, "] 10/10  loss 3.0000  1234 tok/s  ETA 0s")
	require.LessOrEqual(t, len(strings.TrimSuffix(strings.TrimSuffix(last, "\n"), "\x1b[K")), 79)
}

func TestFormatDuration(t *testing.T) {
	require.Equal(t, "6s", formatDuration(6*time.Second))
	require.Equal(t, "4m05s", formatDuration(4*time.Minute+5*time.Second))
	require.Equal(t, "1h02m03s", formatDuration(time.Hour+2*time.Minute+3*time.Second+400*time.Millisecond))
}

// TestQuantizationStoredHead: a GGUF's block-quantized head, which holds
// the values the float32 head golora loaded before held, counts as float
// in the run's configuration, so that a run started on the float32 head
// resumes; quantized block linears count as ever.
func TestQuantizationStoredHead(t *testing.T) {
	w := model.RandomWeights(model.Config{Dim: 64, HiddenDim: 128, Layers: 1, Heads: 2, KVHeads: 2, HeadDim: 32,
		VocabSize: 64, MaxSeqLen: 16, NormEps: 1e-5, RopeTheta: 10000}, 5)
	toGGML := func(lin *model.Linear) {
		m, err := ggml.Quantize(ggml.Q8_0, lin.Dense, lin.Out, lin.In)
		require.NoError(t, err)
		lin.Quantized, lin.Dense = m, nil
	}
	toGGML(w.Output)
	require.Nil(t, quantization(w), "a Q8_0 head alone")
	toGGML(w.Layers[0].Q)
	q := quantization(w)
	require.NotNil(t, q)
	require.Equal(t, []string{"q8_0", "", "", "", "", "", "", ""}, q.Formats)
}
