package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"slices"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/fsutil"
)

// readMetrics reads a metrics file written by metricsWriter. Errors name the
// file and line.
func readMetrics(r io.Reader, name string) ([]Metric, error) {
	var out []Metric
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var m Metric
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	return out, nil
}

// point is one point of a loss curve.
type point struct {
	Step int
	Loss float64
}

// lossCurves splits metrics into the training and the evaluation loss by
// step. When a step appears more than once (a run resumed from a checkpoint
// older than its last logged step), the last record wins, which is the one
// of the run that continued. Non-finite losses are left out.
func lossCurves(metrics []Metric) (trainLoss, evalLoss []point) {
	tr := map[int]float64{}
	ev := map[int]float64{}
	for _, m := range metrics {
		if m.EvalLoss != nil {
			ev[m.Step] = *m.EvalLoss
		} else {
			tr[m.Step] = m.Loss
		}
	}
	curve := func(byStep map[int]float64) []point {
		var pts []point
		for s, l := range byStep {
			if !math.IsNaN(l) && !math.IsInf(l, 0) {
				pts = append(pts, point{s, l})
			}
		}
		slices.SortFunc(pts, func(a, b point) int { return a.Step - b.Step })
		return pts
	}
	return curve(tr), curve(ev)
}

// plotLossFile draws the loss curves of the metrics file at metricsPath into
// a PNG image at pngPath, written atomically.
func plotLossFile(metricsPath, pngPath string) error {
	f, err := fsutil.Open(metricsPath)
	if err != nil {
		return fmt.Errorf("train: loss plot: %w", err)
	}
	defer f.Close()
	ms, err := readMetrics(f, metricsPath)
	if err != nil {
		return fmt.Errorf("train: loss plot: %w", err)
	}
	tr, ev := lossCurves(ms)
	err = atomicfile.WriteFile(pngPath, func(w io.Writer) error { return plotLoss(w, tr, ev) }, 0o644)
	if err != nil {
		return fmt.Errorf("train: loss plot: %w", err)
	}
	return nil
}

// Plot geometry and colours.
const (
	plotWidth, plotHeight = 800, 500
	marginLeft            = 72
	marginRight           = 24
	marginTop             = 36
	marginBottom          = 48
)

var (
	colorAxis  = color.RGBA{0x20, 0x20, 0x20, 0xff}
	colorGrid  = color.RGBA{0xe0, 0xe0, 0xe0, 0xff}
	colorTrain = color.RGBA{0x1f, 0x77, 0xb4, 0xff} // blue
	colorEval  = color.RGBA{0xe6, 0x55, 0x0d, 0xff} // orange
)

// plotLoss draws a PNG line chart of the training loss (blue line) and the
// evaluation loss (orange line with markers) against the step, with axes,
// tick labels, axis titles and a legend.
func plotLoss(w io.Writer, trainLoss, evalLoss []point) error {
	img := image.NewRGBA(image.Rect(0, 0, plotWidth, plotHeight))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	f, err := newFrame(trainLoss, evalLoss)
	if err != nil {
		return err
	}
	f.axes(img)
	f.curve(img, trainLoss, colorTrain, false)
	f.curve(img, evalLoss, colorEval, true)
	f.legend(img)
	return png.Encode(w, img)
}

// frame maps steps and losses to pixels of the plot area.
type frame struct {
	x0, x1, y0, y1           float64 // the data ranges shown
	left, right, top, bottom int     // the plot area
}

// newFrame chooses the ranges that show every point, with some room above
// and below the losses.
func newFrame(trainLoss, evalLoss []point) (*frame, error) {
	x0, x1 := math.Inf(1), math.Inf(-1)
	y0, y1 := math.Inf(1), math.Inf(-1)
	for _, pts := range [][]point{trainLoss, evalLoss} {
		for _, p := range pts {
			x0, x1 = math.Min(x0, float64(p.Step)), math.Max(x1, float64(p.Step))
			y0, y1 = math.Min(y0, p.Loss), math.Max(y1, p.Loss)
		}
	}
	if math.IsInf(x0, 0) {
		x0, x1, y0, y1 = 0, 1, 0, 1
	}
	if x1 == x0 {
		x0, x1 = x0-1, x1+1
	}
	if y1 == y0 {
		y0, y1 = y0-0.5, y1+0.5
	}
	pad := 0.05 * (y1 - y0)
	y0, y1 = y0-pad, y1+pad
	if math.IsInf(y1-y0, 0) || math.IsInf(x1-x0, 0) {
		return nil, fmt.Errorf("train: loss plot: losses from %g to %g span too wide a range to draw", y0, y1)
	}
	return &frame{x0: x0, x1: x1, y0: y0, y1: y1,
		left: marginLeft, right: plotWidth - marginRight, top: marginTop, bottom: plotHeight - marginBottom}, nil
}

// px and py return the pixel of a step and of a loss. Positions are
// clamped to the image, which also bounds the work of drawing a segment
// whatever the values.
func (f *frame) px(step float64) int {
	return clampInt(f.left+int(math.Round((step-f.x0)/(f.x1-f.x0)*float64(f.right-f.left))), 0, plotWidth-1)
}

func (f *frame) py(loss float64) int {
	return clampInt(f.bottom-int(math.Round((loss-f.y0)/(f.y1-f.y0)*float64(f.bottom-f.top))), 0, plotHeight-1)
}

// axes draws the grid, the ticks and their labels, the axes and the titles.
func (f *frame) axes(img *image.RGBA) {
	left, right, top, bottom := f.left, f.right, f.top, f.bottom
	for _, v := range ticks(f.y0, f.y1) {
		y := f.py(v)
		hline(img, left, right, y, colorGrid)
		hline(img, left-5, left, y, colorAxis)
		label := formatTick(v)
		drawText(img, label, left-8-textWidth(label), y+4, colorAxis)
	}
	for _, v := range ticks(f.x0, f.x1) {
		if v != math.Trunc(v) {
			continue // steps are whole numbers
		}
		x := f.px(v)
		vline(img, x, top, bottom, colorGrid)
		vline(img, x, bottom, bottom+5, colorAxis)
		label := formatTick(v)
		drawText(img, label, x-textWidth(label)/2, bottom+18, colorAxis)
	}
	hline(img, left, right, bottom, colorAxis)
	vline(img, left, top, bottom, colorAxis)

	title := "Loss"
	drawText(img, title, (left+right-textWidth(title))/2, top-14, colorAxis)
	xTitle := "step"
	drawText(img, xTitle, (left+right-textWidth(xTitle))/2, plotHeight-10, colorAxis)
	drawTextUp(img, "loss", 14, (top+bottom)/2, colorAxis)
}

// curve draws a loss curve, with a marker on each point if markers (or if
// it has one point).
func (f *frame) curve(img *image.RGBA, pts []point, c color.RGBA, markers bool) {
	for i, p := range pts {
		x, y := f.px(float64(p.Step)), f.py(p.Loss)
		if i > 0 {
			line(img, f.px(float64(pts[i-1].Step)), f.py(pts[i-1].Loss), x, y, c)
		}
		if markers || len(pts) == 1 {
			fillRect(img, x-3, y-3, x+3, y+3, c)
		}
	}
}

// legend draws the legend, top right inside the plot area.
func (f *frame) legend(img *image.RGBA) {
	lx, ly := f.right-110, f.top+10
	fillRect(img, lx-8, ly-4, f.right-6, ly+38, color.RGBA{0xff, 0xff, 0xff, 0xff})
	line(img, lx, ly+6, lx+24, ly+6, colorTrain)
	drawText(img, "train", lx+32, ly+10, colorAxis)
	line(img, lx, ly+26, lx+24, ly+26, colorEval)
	fillRect(img, lx+9, ly+23, lx+15, ly+29, colorEval)
	drawText(img, "eval", lx+32, ly+30, colorAxis)
}

// ticks returns round values (1, 2 or 5 times a power of ten apart) covering
// [lo, hi] with about five intervals.
func ticks(lo, hi float64) []float64 {
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, f := range []float64{2, 5, 10} {
		if step >= raw {
			break
		}
		step = f * mag
	}
	first, last := math.Ceil(lo/step), math.Floor(hi/step)
	if !(step > 0) || math.IsInf(step, 0) || !(last-first < 20) {
		return nil // a range float64 cannot divide into round steps
	}
	var out []float64
	for k := first; k <= last; k++ {
		out = append(out, k*step)
	}
	return out
}

func clampInt(v, lo, hi int) int { return max(lo, min(hi, v)) }

func formatTick(v float64) string {
	if v == 0 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

var face = basicfont.Face7x13

func textWidth(s string) int { return font.MeasureString(face, s).Round() }

// drawText draws s with its baseline starting at (x, y).
func drawText(img draw.Image, s string, x, y int, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: face, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// drawTextUp draws s rotated a quarter turn anticlockwise (reading upwards),
// centred vertically on cy, its top at column x.
func drawTextUp(img *image.RGBA, s string, x, cy int, c color.Color) {
	w, h := textWidth(s), 13
	tmp := image.NewRGBA(image.Rect(0, 0, w, h))
	drawText(tmp, s, 0, 10, c)
	for ty := range h {
		for tx := range w {
			if _, _, _, a := tmp.At(tx, ty).RGBA(); a > 0 {
				img.Set(x+ty, cy+w/2-tx, tmp.At(tx, ty))
			}
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x <= x1; x++ {
		img.SetRGBA(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y <= y1; y++ {
		img.SetRGBA(x, y, c)
	}
}

func fillRect(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	draw.Draw(img, image.Rect(x0, y0, x1+1, y1+1), image.NewUniform(c), image.Point{}, draw.Src)
}

// line draws a two-pixel-wide segment with Bresenham's algorithm.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		fillRect(img, x0, y0, x0+1, y0+1, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}
