package train

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
)

var update = flag.Bool("update", false, "rewrite the testdata files made by this package")

// The testdata checkpoint and metrics come from a two-step run of
// fuzzTrainer (go test -run TestCheckpointTestdata -update ./train/).
const (
	testdataCheckpoint = "testdata/checkpoint.safetensors"
	testdataMetrics    = "testdata/metrics.jsonl"
)

// fuzzTrainer is a very small run whose checkpoint is about 2 KB.
func fuzzTrainer(t testing.TB, outDir string) *Trainer {
	t.Helper()
	c := model.Config{Dim: 8, HiddenDim: 16, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 4, VocabSize: 12, MaxSeqLen: 8, NormEps: 1e-5, RopeTheta: 10000}
	base := syntheticBase(t, c, 1, false)
	cfg := lora.DefaultConfig()
	cfg.R, cfg.Alpha, cfg.Dropout = 2, 4, 0.1
	cfg.TargetModules = lora.ModuleNames("q_proj", "v_proj")
	adapter := newAdapter(t, base, cfg, 2)
	tc := testTrainConfig(4, outDir)
	tc.SeqLen = 6
	tc.CheckpointEvery = 2
	data := countingExamples(3, 4, 7, c.VocabSize)
	tr, err := New(base, adapter, data, data[:1], tc)
	require.NoError(t, err)
	return tr
}

// TestCheckpointTestdata checks that the stored checkpoint still resumes,
// which keeps the format stable (and the fuzz seeds meaningful).
func TestCheckpointTestdata(t *testing.T) {
	if *update {
		dir := t.TempDir()
		tr := fuzzTrainer(t, dir)
		ctx, cancel := context.WithCancel(context.Background())
		tr.cfg.OnStep = func(m Metric) {
			if m.Step == 2 && m.EvalLoss == nil {
				cancel()
			}
		}
		_, err := tr.Run(ctx)
		require.ErrorIs(t, err, context.Canceled)
		tr.Close()
		for src, dst := range map[string]string{CheckpointPath(dir): testdataCheckpoint, filepath.Join(dir, MetricsFile): testdataMetrics} {
			b, err := os.ReadFile(src)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(dst, b, 0o644))
		}
	}
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, CheckpointDir), 0o755))
	b, err := os.ReadFile(testdataCheckpoint)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(CheckpointPath(dir), b, 0o644))
	tr := fuzzTrainer(t, dir)
	defer tr.Close()
	require.NoError(t, tr.Resume())
	require.Equal(t, 2, tr.Steps())
	res, err := tr.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, 4, res.Steps)
}

// FuzzDecodeCheckpoint feeds damaged checkpoints to the reader: it must
// return an error or a checkpoint that fits the trainer, never panic.
func FuzzDecodeCheckpoint(f *testing.F) {
	seed, err := os.ReadFile(testdataCheckpoint)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	tr := fuzzTrainer(f, f.TempDir())
	defer tr.Close()
	shapes := make([]paramShape, len(tr.params))
	for i, p := range tr.params {
		shapes[i] = paramShape{name: p.Name, shape: p.Node.Shape().Clone()}
	}
	// The seed itself must decode, or the fuzzer would only explore
	// rejections of the header.
	sf, err := safetensors.Parse(seed)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := decodeCheckpoint(sf, shapes, tr.hash, tr.cfg.Steps); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := safetensors.Parse(data)
		if err != nil {
			return
		}
		r, err := decodeCheckpoint(sf, shapes, tr.hash, tr.cfg.Steps)
		if err != nil {
			return
		}
		for i, s := range shapes {
			n := s.shape[0] * s.shape[1]
			if len(r.values[i]) != n || len(r.m[i]) != n || len(r.v[i]) != n {
				t.Fatalf("%s: decoded %d, %d, %d values, want %d", s.name, len(r.values[i]), len(r.m[i]), len(r.v[i]), n)
			}
		}
	})
}

// FuzzReadMetrics reads and plots damaged metrics files: an error or a
// picture, never a panic or a hang.
func FuzzReadMetrics(f *testing.F) {
	seed, err := os.ReadFile(testdataMetrics)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"step":1,"loss":1e308}` + "\n" + `{"step":2,"loss":-1e308}` + "\n"))
	f.Add([]byte(`{"step":-9223372036854775808,"loss":1}` + "\n" + `{"step":9223372036854775807,"eval_loss":2}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := readMetrics(bytes.NewReader(data), "metrics.jsonl")
		if err != nil {
			return
		}
		tr, ev := lossCurves(ms)
		_ = plotLoss(io.Discard, tr, ev)
	})
}
