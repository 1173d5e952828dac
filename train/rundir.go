package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/dirlock"
	"github.com/golora/golora/internal/fsutil"
)

// ErrFinished is wrapped by the error of Run when the trainer has already
// done all its steps (a finished run resumed): Run then changes nothing.
var ErrFinished = errors.New("train: the run has already done all its steps")

// openRunDir takes the lock on a run's output directory, creating it, and
// removes what interrupted writes left there.
func openRunDir(dir string) (*dirlock.Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	lock, err := dirlock.Acquire(dir)
	if err != nil {
		return nil, fmt.Errorf("train: --out/OutDir %w", err)
	}
	for _, d := range []string{dir, filepath.Join(dir, CheckpointDir)} {
		if _, err := atomicfile.CleanStale(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			lock.Release()
			return nil, fmt.Errorf("train: cleaning %s: %w", d, err)
		}
	}
	return lock, nil
}

// maxMetricsBytes bounds the metrics file a resumed run reads back: about
// ten million steps.
const maxMetricsBytes = 2 << 30

// openMetrics opens the metrics file of a run that has done step steps so
// that it describes that run alone: a new run (step 0) replaces any old
// file; a resumed run keeps the records up to its checkpoint's step, drops
// those of steps it will run again, and repairs a partial last line. A run
// resumed after its last step (redoing its final evaluation) drops the
// evaluation of that step too.
func openMetrics(path string, step int, last bool) (*metricsWriter, error) {
	var kept []byte
	if step > 0 {
		data, err := fsutil.ReadRegular(path, maxMetricsBytes)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("train: metrics: %w", err)
		}
		evalUpTo := step
		if last {
			evalUpTo = step - 1
		}
		if kept, err = keepMetrics(data, step, evalUpTo); err != nil {
			return nil, fmt.Errorf("train: metrics %s: %w", path, err)
		}
	}
	err := atomicfile.WriteFile(path, func(w io.Writer) error { _, err := w.Write(kept); return err }, 0o644)
	if err != nil {
		return nil, fmt.Errorf("train: metrics: %w", err)
	}
	return createMetrics(path)
}

// keepMetrics returns the training records of a metrics file whose step is
// at most upTo and the evaluation records up to evalUpTo. A last line that does not parse (the write of a crashed run) is
// dropped; any other line that does not parse is an error naming it.
func keepMetrics(data []byte, upTo, evalUpTo int) ([]byte, error) {
	var out bytes.Buffer
	for n := 1; len(data) > 0; n++ {
		line, rest, complete := bytes.Cut(data, []byte{'\n'})
		data = rest
		raw := bytes.TrimSpace(line)
		if len(raw) == 0 {
			continue
		}
		var m Metric
		if err := json.Unmarshal(raw, &m); err != nil {
			if !complete || len(bytes.TrimSpace(data)) == 0 {
				break // the torn last record of an interrupted run
			}
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if m.Step <= upTo && (m.EvalLoss == nil || m.Step <= evalUpTo) {
			out.Write(raw)
			out.WriteByte('\n')
		}
	}
	return out.Bytes(), nil
}
