package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

// Metric is one line of the metrics file: a training step, or an evaluation
// when EvalLoss is set.
type Metric struct {
	Step     int     `json:"step"`                // optimizer steps done, counting from 1
	Loss     float64 `json:"loss,omitempty"`      // mean over the step's micro-batches of their mean token loss
	LR       float64 `json:"lr,omitempty"`        // learning rate of the step
	GradNorm float64 `json:"grad_norm,omitempty"` // global L2 norm of the averaged gradient, before clipping
	// TokensPerSec is the step's positions (BatchSize·SeqLen·GradAccum,
	// padding included, as PyTorch benchmarks count B·T) per second of
	// the step's wall time; Tokens is the running total of positions.
	TokensPerSec float64  `json:"tokens_per_sec,omitempty"`
	Tokens       int64    `json:"tokens,omitempty"`
	EvalLoss     *float64 `json:"eval_loss,omitempty"`       // mean loss per held-out target token
	EvalPPL      *float64 `json:"eval_perplexity,omitempty"` // exp(EvalLoss)
	ElapsedSec   float64  `json:"elapsed_sec"`               // training time so far, resumed runs included
}

// metricsWriter appends metrics as JSON lines, flushing each line so that a
// crashed run leaves every finished step on disk.
type metricsWriter struct {
	f *os.File
	w *bufio.Writer
}

// createMetrics opens path for appending (a resumed run continues the file).
func createMetrics(path string) (*metricsWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("train: metrics: %w", err)
	}
	return &metricsWriter{f: f, w: bufio.NewWriter(f)}, nil
}

// Write appends one metric.
func (m *metricsWriter) Write(x Metric) error {
	line, err := json.Marshal(x)
	if err != nil {
		return fmt.Errorf("train: metrics: %w", err)
	}
	m.w.Write(line)
	m.w.WriteByte('\n')
	if err := m.w.Flush(); err != nil {
		return fmt.Errorf("train: metrics %s: %w", m.f.Name(), err)
	}
	return nil
}

// Close closes the file.
func (m *metricsWriter) Close() error {
	if err := m.w.Flush(); err != nil {
		m.f.Close()
		return err
	}
	return m.f.Close()
}
