package train

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// progress reports training progress on a writer: on a terminal a single
// line redrawn in place (a bar, the loss, tokens/s and the time left),
// elsewhere (a log file, a pipe) a plain line every few steps. A nil writer
// reports nothing.
type progress struct {
	w     io.Writer
	fd    int // terminal file descriptor; −1 when w is not a terminal
	total int
	every int

	began     time.Time
	firstStep int // step count when this run started, for the rate
	drawn     time.Time
	last      string // the bar last drawn, to redraw it after an evaluation line
}

// redrawInterval limits how often the terminal line is rewritten.
const redrawInterval = 100 * time.Millisecond

func newProgress(w io.Writer, total, every int) *progress {
	p := &progress{w: w, fd: -1, total: total, every: every}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.fd = int(f.Fd())
	}
	if p.every <= 0 {
		p.every = max(1, total/20)
	}
	return p
}

func (p *progress) start(step int) {
	p.began = time.Now()
	p.firstStep = step
}

// eta estimates the time left from the mean step time of this run.
func (p *progress) eta(step int) time.Duration {
	done := step - p.firstStep
	if done <= 0 {
		return 0
	}
	per := time.Since(p.began) / time.Duration(done)
	return per * time.Duration(p.total-step)
}

func (p *progress) step(m Metric) {
	if p.w == nil {
		return
	}
	eta := formatDuration(p.eta(m.Step))
	if p.fd < 0 {
		if m.Step%p.every == 0 || m.Step == p.total || m.Step == p.firstStep+1 {
			fmt.Fprintf(p.w, "step %d/%d  loss %.4f  lr %.3g  grad norm %.3g  %.0f tokens/s  ETA %s\n",
				m.Step, p.total, m.Loss, m.LR, m.GradNorm, m.TokensPerSec, eta)
		}
		return
	}
	if time.Since(p.drawn) < redrawInterval && m.Step != p.total {
		return
	}
	p.drawn = time.Now()
	text := fmt.Sprintf(" %d/%d  loss %.4f  %.0f tok/s  ETA %s", m.Step, p.total, m.Loss, m.TokensPerSec, eta)
	width := 80
	if w, _, err := term.GetSize(p.fd); err == nil && w > 0 {
		width = w
	}
	barWidth := width - len(text) - 3 // brackets and a free last column
	bar := ""
	if barWidth >= 10 {
		filled := barWidth * m.Step / p.total
		bar = "[" + strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled) + "]"
	}
	p.last = bar + text
	// \r returns to the start of the line, ESC[K clears what is left of
	// the previous, possibly longer, line.
	fmt.Fprintf(p.w, "\r%s\x1b[K", p.last)
}

func (p *progress) eval(m Metric) {
	if p.w == nil || m.EvalLoss == nil {
		return
	}
	line := fmt.Sprintf("step %d/%d  eval loss %.4f  perplexity %.3f", m.Step, p.total, *m.EvalLoss, *m.EvalPPL)
	if p.fd < 0 {
		fmt.Fprintln(p.w, line)
		return
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K\n%s", line, p.last)
}

// finish ends the terminal line so that later output starts on a new one.
func (p *progress) finish() {
	if p.w != nil && p.fd >= 0 && p.last != "" {
		fmt.Fprintln(p.w)
	}
}

// formatDuration renders d rounded to seconds, e.g. "1h02m03s", "4m05s", "6s".
func formatDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	h, m := s/3600, s/60%60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s%60)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s%60)
	}
	return fmt.Sprintf("%ds", s%60)
}
