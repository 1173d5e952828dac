package train

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/dirlock"
)

// metricSteps reads a metrics file and returns the steps of its training
// records and of its evaluation records, in order.
func metricSteps(t *testing.T, path string) (trainSteps, evalSteps []int) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	ms, err := readMetrics(bytes.NewReader(data), path)
	require.NoError(t, err)
	for _, m := range ms {
		if m.EvalLoss != nil {
			evalSteps = append(evalSteps, m.Step)
		} else {
			trainSteps = append(trainSteps, m.Step)
		}
	}
	return trainSteps, evalSteps
}

func upTo(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i + 1
	}
	return s
}

// TestMetricsDescribeOneHistory emulates kill -9 after step 5 of a run
// whose last checkpoint is that of step 2, with a torn last line in the
// metrics file: the resumed run must leave every step once in the file, with
// the losses of an uninterrupted run. A new run into the same directory then
// replaces the file instead of appending to it.
func TestMetricsDescribeOneHistory(t *testing.T) {
	base := syntheticBase(t, tinyConfig, 81, false)
	data := countingExamples(82, 6, 13, tinyConfig.VocabSize)

	straightDir := t.TempDir()
	cfg := testTrainConfig(6, straightDir)
	cfg.CheckpointEvery, cfg.EvalEvery = 2, 2
	_, err := Train(context.Background(), base, newAdapter(t, base, allLinear(4, 8, 0), 83), data, data[:2], cfg)
	require.NoError(t, err)
	want, err := os.ReadFile(filepath.Join(straightDir, MetricsFile))
	require.NoError(t, err)

	dir := t.TempDir()
	cfg.OutDir = dir
	var step2 []byte
	ctx, cancel := context.WithCancel(context.Background())
	killed := cfg
	killed.OnStep = func(m Metric) {
		if m.Step == 3 && m.EvalLoss == nil {
			step2, err = os.ReadFile(CheckpointPath(dir))
			require.NoError(t, err)
		}
		if m.Step == 5 {
			cancel()
		}
	}
	_, err = Train(ctx, base, newAdapter(t, base, allLinear(4, 8, 0), 83), data, data[:2], killed)
	require.ErrorIs(t, err, context.Canceled)
	// What kill -9 at step 5 leaves: the checkpoint of step 2, the records
	// of steps 3 to 5 and half a line.
	require.NoError(t, os.WriteFile(CheckpointPath(dir), step2, 0o644))
	f, err := os.OpenFile(filepath.Join(dir, MetricsFile), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"step":6,"loss":1.2`)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	_, err = Train(context.Background(), base, newAdapter(t, base, allLinear(4, 8, 0), 83), data, data[:2], cfg)
	require.NoError(t, err)
	trainSteps, evalSteps := metricSteps(t, filepath.Join(dir, MetricsFile))
	require.Equal(t, upTo(6), trainSteps)
	require.Equal(t, []int{2, 4, 6}, evalSteps)
	got, err := os.ReadFile(filepath.Join(dir, MetricsFile))
	require.NoError(t, err)
	require.Equal(t, stripTimes(t, want), stripTimes(t, got), "the resumed run's records differ from the uninterrupted run's")

	// A new run (its checkpoint removed, as golora train requires without
	// --resume) replaces the old history.
	require.NoError(t, os.RemoveAll(filepath.Join(dir, CheckpointDir)))
	cfg.Steps = 2
	_, err = Train(context.Background(), base, newAdapter(t, base, allLinear(4, 8, 0), 83), data, nil, cfg)
	require.NoError(t, err)
	trainSteps, evalSteps = metricSteps(t, filepath.Join(dir, MetricsFile))
	require.Equal(t, upTo(2), trainSteps)
	require.Empty(t, evalSteps)
}

// stripTimes returns the metrics without the fields that measure time.
func stripTimes(t *testing.T, data []byte) []string {
	ms, err := readMetrics(bytes.NewReader(data), "metrics")
	require.NoError(t, err)
	var out []string
	for _, m := range ms {
		loss, ppl := deref(m.EvalLoss), deref(m.EvalPPL)
		m.TokensPerSec, m.ElapsedSec, m.EvalLoss, m.EvalPPL = 0, 0, nil, nil
		out = append(out, fmt.Sprintf("%+v %v %v", m, loss, ppl))
	}
	return out
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestKeepMetrics(t *testing.T) {
	lines := `{"step":1,"loss":2}` + "\n" + `{"step":2,"loss":1.5}` + "\n" + `{"step":2,"eval_loss":1.6,"elapsed_sec":0}` + "\n" + `{"step":3,"loss":1}` + "\n"
	for _, c := range []struct {
		in   string
		upTo int
		want string
		err  string
	}{
		{lines, 2, lines[:strings.Index(lines, `{"step":3`)], ""},
		{lines, 3, lines, ""},
		{lines + `{"step":4,"lo`, 9, lines, ""},                          // torn last line
		{lines + `{"step":4,"lo` + "\n\n", 9, lines, ""},                 // torn, then blank lines
		{`{"step":1}` + "\nxx\n" + `{"step":2}` + "\n", 9, "", "line 2"}, // damage inside
		{"", 3, "", ""},
	} {
		got, err := keepMetrics([]byte(c.in), c.upTo, c.upTo)
		if c.err != "" {
			require.ErrorContains(t, err, c.err)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, c.want, string(got))
	}
}

// FuzzKeepMetrics repairs damaged metrics files: an error or lines that
// all parse, with no step past the limit, never a panic.
func FuzzKeepMetrics(f *testing.F) {
	seed, err := os.ReadFile(testdataMetrics)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, 3)
	f.Add(seed[:len(seed)/2], 100)
	f.Add([]byte(`{"step":1}`+"\n"+`{"st`), 1)
	f.Fuzz(func(t *testing.T, data []byte, upTo int) {
		evalUpTo := upTo
		if upTo > math.MinInt {
			evalUpTo = upTo - 1
		}
		kept, err := keepMetrics(data, upTo, evalUpTo)
		if err != nil {
			return
		}
		ms, err := readMetrics(bytes.NewReader(kept), "kept")
		if err != nil {
			t.Fatalf("kept lines do not parse: %v", err)
		}
		for _, m := range ms {
			if m.Step > upTo || m.EvalLoss != nil && m.Step > evalUpTo {
				t.Fatalf("kept step %d (eval %v) past %d", m.Step, m.EvalLoss != nil, upTo)
			}
		}
	})
}

// TestOutDirLocked starts two trainers on one directory: the second is
// refused at once, naming this process; after Close the directory is free.
func TestOutDirLocked(t *testing.T) {
	base := syntheticBase(t, tinyConfig, 91, false)
	data := countingExamples(92, 4, 13, tinyConfig.VocabSize)
	dir := t.TempDir()
	cfg := testTrainConfig(2, dir)
	first, err := New(base, newAdapter(t, base, allLinear(4, 8, 0), 93), data, nil, cfg)
	require.NoError(t, err)
	_, err = New(base, newAdapter(t, base, allLinear(4, 8, 0), 93), data, nil, cfg)
	require.ErrorIs(t, err, dirlock.ErrLocked)
	require.ErrorContains(t, err, fmt.Sprintf("pid %d", os.Getpid()))
	require.NoError(t, first.Close())
	second, err := New(base, newAdapter(t, base, allLinear(4, 8, 0), 93), data, nil, cfg)
	require.NoError(t, err)
	require.NoError(t, second.Close())
}

// TestStaleTempFilesRemoved leaves what interrupted writes leave in a run
// directory and its checkpoint directory; a new Trainer removes them and
// nothing else.
func TestStaleTempFilesRemoved(t *testing.T) {
	base := syntheticBase(t, tinyConfig, 94, false)
	data := countingExamples(95, 4, 13, tinyConfig.VocabSize)
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, CheckpointDir), 0o755))
	stale := []string{".adapter_model.safetensors.pending-12", ".loss.png.tmp-34", ".adapter.v-56", filepath.Join(CheckpointDir, ".state.safetensors.tmp-78")}
	for _, name := range stale {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644))
	tr, err := New(base, newAdapter(t, base, allLinear(4, 8, 0), 96), data, nil, testTrainConfig(2, dir))
	require.NoError(t, err)
	defer tr.Close()
	for _, name := range stale {
		require.NoFileExists(t, filepath.Join(dir, name))
	}
	require.FileExists(t, filepath.Join(dir, "notes.txt"))
}

// TestResumeFinishedRun resumes a run that did all its steps: Run says so
// and changes no file.
func TestResumeFinishedRun(t *testing.T) {
	base := syntheticBase(t, tinyConfig, 97, false)
	data := countingExamples(98, 6, 13, tinyConfig.VocabSize)
	dir := t.TempDir()
	cfg := testTrainConfig(3, dir)
	cfg.CheckpointEvery = 3
	_, err := Train(context.Background(), base, newAdapter(t, base, allLinear(4, 8, 0), 99), data, data[:2], cfg)
	require.NoError(t, err)
	before := snapshotDir(t, dir)
	_, err = Train(context.Background(), base, newAdapter(t, base, allLinear(4, 8, 0), 99), data, data[:2], cfg)
	require.ErrorIs(t, err, ErrFinished)
	require.Equal(t, before, snapshotDir(t, dir))
}

// snapshotDir maps every regular file under dir (links followed) to its
// contents.
func snapshotDir(t *testing.T, dir string) map[string]string {
	out := make(map[string]string)
	require.NoError(t, filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() || filepath.Base(p) == dirlock.File {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = string(b)
		return err
	}))
	return out
}

// TestResumeRefusesOtherQuantization resumes a float32 run on an NF4 base.
func TestResumeRefusesOtherQuantization(t *testing.T) {
	data := countingExamples(101, 6, 13, tinyConfig.VocabSize)
	dir := t.TempDir()
	cfg := testTrainConfig(2, dir)
	cfg.CheckpointEvery = 1
	cfg.Steps = 3
	ctx, cancel := context.WithCancel(context.Background())
	stop := cfg
	stop.OnStep = func(m Metric) {
		if m.Step == 1 {
			cancel()
		}
	}
	dense := syntheticBase(t, tinyConfig, 102, false)
	_, err := Train(ctx, dense, newAdapter(t, dense, allLinear(4, 8, 0), 103), data, nil, stop)
	require.ErrorIs(t, err, context.Canceled)

	quantized := syntheticBase(t, tinyConfig, 102, true)
	tr, err := New(quantized, newAdapter(t, quantized, allLinear(4, 8, 0), 103), data, nil, cfg)
	require.NoError(t, err)
	defer tr.Close()
	require.ErrorContains(t, tr.Resume(), "written by a run with other settings")
}
