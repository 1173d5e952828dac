//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/dirlock"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/train"
)

const quickstartData = "../../examples/quickstart/data/train.jsonl"

// crashTrainArgs trains on the quick start data with a checkpoint every
// step, so that kills land before, during and after checkpoint writes.
func crashTrainArgs(data, out string, steps int) []string {
	return []string{"train", "--data", data, "--out", out, "--steps", strconv.Itoa(steps),
		"--batch", "2", "--seq-len", "32", "--rank", "2", "--checkpoint-every", "1", "--eval-every", "5",
		"--eval-split", "0.1", "--lr", "5e-3"}
}

// checkMetricsOnce checks that the metrics file holds steps 1..steps once
// each and one evaluation every evalEvery steps.
func checkMetricsOnce(t *testing.T, out string, steps, evalEvery int) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(out, train.MetricsFile))
	require.NoError(t, err)
	var trainSteps, evalSteps []int
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m train.Metric
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if m.EvalLoss != nil {
			evalSteps = append(evalSteps, m.Step)
		} else {
			trainSteps = append(trainSteps, m.Step)
		}
	}
	var wantTrain, wantEval []int
	for s := 1; s <= steps; s++ {
		wantTrain = append(wantTrain, s)
		if s%evalEvery == 0 || s == steps {
			wantEval = append(wantEval, s)
		}
	}
	require.Equal(t, wantTrain, trainSteps, "training records")
	require.Equal(t, wantEval, evalSteps, "evaluation records")
}

// checkAdapterWhole checks that out holds no adapter or a complete one.
func checkAdapterWhole(t *testing.T, out, when string) {
	t.Helper()
	_, errCfg := os.Stat(filepath.Join(out, lora.ConfigFile))
	_, errW := os.Stat(filepath.Join(out, lora.WeightsFile))
	if errors.Is(errCfg, os.ErrNotExist) && errors.Is(errW, os.ErrNotExist) {
		return
	}
	_, err := lora.Load(out)
	require.NoError(t, err, "%s: the adapter directory holds a partial adapter", when)
}

// TestCrashLoop kills golora train with SIGKILL at 20 seeded random moments,
// resuming after each kill. Each campaign runs in a fresh directory until the
// run finishes, with a kill after a delay drawn from the length of a whole
// run, so that kills land in loading, steps, checkpoint writes, evaluations
// and the final save. After every kill the adapter directory must hold a
// whole adapter or none; every finished run's adapter must be bit for bit
// the uninterrupted run's, its metrics.jsonl must hold every step once, and
// no temporary file may be left.
func TestCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("about a minute on two shared cores")
	}
	const steps, kills = 25, 20
	data := crashData(t)
	ref := filepath.Join(t.TempDir(), "ref")
	start := time.Now()
	c := startChild(t, crashTrainArgs(data, ref, steps)...)
	require.Equal(t, 0, c.wait(), c.stderr.String())
	full := time.Since(start)
	t.Logf("an uninterrupted run takes %v", full)

	rng := rand.New(rand.NewPCG(11, 0))
	killed := 0
	for campaign := 1; killed < kills; campaign++ {
		out := filepath.Join(t.TempDir(), fmt.Sprintf("run%d", campaign))
		for attempt := 0; ; attempt++ {
			require.Less(t, attempt, 100, "the run never finished")
			args := crashTrainArgs(data, out, steps)
			if _, err := os.Stat(train.CheckpointPath(out)); err == nil {
				args = append(args, "--resume")
			}
			c := startChild(t, args...)
			time.Sleep(time.Duration(rng.Int64N(int64(full))))
			err := c.cmd.Process.Signal(syscall.SIGKILL)
			if code := c.wait(); err == nil && code == -1 {
				killed++
				checkAdapterWhole(t, out, fmt.Sprintf("kill %d", killed))
				continue
			}
			// The run ended before the kill: it must have succeeded.
			require.Equal(t, 0, c.cmd.ProcessState.ExitCode(), c.stderr.String())
			break
		}
		checkFinishedRun(t, ref, out, steps)
	}
	t.Logf("%d kills", killed)
}

// crashData writes the first 40 lines of the quick start data, a few
// seconds of training.
func crashData(t *testing.T) string {
	data, err := os.ReadFile(quickstartData)
	require.NoError(t, err)
	lines := strings.SplitAfter(string(data), "\n")
	path := filepath.Join(t.TempDir(), "train.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines[:40], "")), 0o644))
	return path
}

// checkFinishedRun compares a run that was killed and resumed with the
// uninterrupted run in ref.
func checkFinishedRun(t *testing.T, ref, out string, steps int) {
	t.Helper()
	for _, name := range []string{lora.WeightsFile, lora.ConfigFile} {
		want, err := os.ReadFile(filepath.Join(ref, name))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(out, name))
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, got), "%s: %s differs from the uninterrupted run's", out, name)
	}
	checkMetricsOnce(t, out, steps, 5)
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	for _, n := range names {
		require.False(t, strings.Contains(n, ".tmp-") || strings.Contains(n, ".pending-"), "left over: %s in %q", n, names)
	}
	require.True(t, slices.Contains(names, "loss.png"), "%q", names)
}

// TestSIGTERMCheckpoints sends SIGTERM to a training run: it must write a
// checkpoint, exit with a message that says how to continue, and resume.
func TestSIGTERMCheckpoints(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	args := crashTrainArgs(crashData(t), out, 100000)
	args[slices.Index(args, "--checkpoint-every")+1] = "100000"
	c := startChild(t, args...)
	waitForSteps(t, out, 3)
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 1, c.wait())
	require.Contains(t, c.stderr.String(), "interrupted")
	require.Contains(t, c.stderr.String(), "--resume")
	require.FileExists(t, train.CheckpointPath(out))
}

// waitForSteps waits until the metrics file of out has n lines.
func waitForSteps(t *testing.T, out string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(filepath.Join(out, train.MetricsFile))
		if bytes.Count(data, []byte("\n")) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the run logged no steps in 60 s")
}

// TestSecondRunRefused starts a second golora train into the --out of a
// running one: it must fail at once, naming the first one's pid.
func TestSecondRunRefused(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	args := crashTrainArgs(crashData(t), out, 100000)
	first := startChild(t, args...)
	defer func() {
		first.cmd.Process.Signal(syscall.SIGKILL)
		first.wait()
	}()
	waitForSteps(t, out, 1)
	code, _, errOut := golora(t, append(args, "--resume")...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, fmt.Sprintf("pid %d", first.cmd.Process.Pid))
	require.Contains(t, errOut, dirlock.ErrLocked.Error())
}
