package quant

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"
)

// stubMatrix returns fixed values and records the row ranges asked for.
type stubMatrix struct {
	rows, cols int
	vals       []float32
	calls      *[][2]int
}

func (s stubMatrix) Dims() (int, int) { return s.rows, s.cols }
func (s stubMatrix) DequantizeRows(dst []float32, start, end int) error {
	if err := checkRows(dst, start, end, s.rows, s.cols); err != nil {
		return err
	}
	*s.calls = append(*s.calls, [2]int{start, end})
	copy(dst, s.vals[start*s.cols:end*s.cols])
	return nil
}
func (s stubMatrix) MulT(y, x []float32, n int) error { return errors.New("not used") }
func (s stubMatrix) StorageBytes() int64              { return 3 }
func (s stubMatrix) BitsPerParam() float64            { return 6 }
func (s stubMatrix) Format() string                   { return "stub" }

func TestMeasureByHand(t *testing.T) {
	// w = [1 2; 3 4], ŵ = [1 2; 3 5]: errors 0, 0, 0, −1, so MSE = 1/4,
	// max |err| = 1 and SQNR = 10·log10((1+4+9+16)/1) = 10·log10(30).
	var calls [][2]int
	m := stubMatrix{rows: 2, cols: 2, vals: []float32{1, 2, 3, 5}, calls: &calls}
	q, err := Measure([]float32{1, 2, 3, 4}, m)
	if err != nil {
		t.Fatal(err)
	}
	want := Quality{Format: "stub", MSE: 0.25, MaxAbsErr: 1, SQNR: 10 * math.Log10(30), BitsPerParam: 6}
	if q != want {
		t.Errorf("Measure = %+v, want %+v", q, want)
	}

	exact := stubMatrix{rows: 1, cols: 2, vals: []float32{1, 2}, calls: &calls}
	if q, err := Measure([]float32{1, 2}, exact); err != nil || !math.IsInf(q.SQNR, 1) || q.MSE != 0 {
		t.Errorf("exact matrix: %+v, %v; want MSE 0 and SQNR +Inf", q, err)
	}
}

func TestMeasureTiles(t *testing.T) {
	// Rows of measureTileElems/2 + 1 columns: a tile holds one row, so a
	// 3-row matrix must be read in three calls, never whole.
	cols := measureTileElems/2 + 1
	w := make([]float32, 3*cols)
	var calls [][2]int
	m := stubMatrix{rows: 3, cols: cols, vals: w, calls: &calls}
	if _, err := Measure(w, m); err != nil {
		t.Fatal(err)
	}
	if want := [][2]int{{0, 1}, {1, 2}, {2, 3}}; len(calls) != 3 || calls[0] != want[0] || calls[1] != want[1] || calls[2] != want[2] {
		t.Errorf("DequantizeRows calls %v, want %v", calls, want)
	}
}

func TestMeasureErrors(t *testing.T) {
	var calls [][2]int
	m := stubMatrix{rows: 2, cols: 2, vals: []float32{1, 2, 3, 4}, calls: &calls}
	if _, err := Measure([]float32{1, 2, 3}, m); err == nil {
		t.Error("length mismatch: got nil error")
	}
	_, err := Measure([]float32{1, 2, float32(math.NaN()), 4}, m)
	if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "row 1, col 0") {
		t.Errorf("NaN weight: got %v, want ErrNonFinite naming row 1, col 0", err)
	}
}

func TestCompare(t *testing.T) {
	w := gaussian(10, 64*64, 0.02)
	qs := []Named{{"fp4", FP4Quantizer(64)}, {"int4", Int4Quantizer(64)}, {"int8", Int8Quantizer(64)}}
	got, err := Compare(context.Background(), w, 64, 64, qs)
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range got {
		if q.Format != qs[i].Name {
			t.Errorf("row %d named %q, want %q", i, q.Format, qs[i].Name)
		}
		m, _ := qs[i].Quantize(w, 64, 64)
		direct, _ := Measure(w, m)
		direct.Format = q.Format
		if q != direct {
			t.Errorf("%s: Compare gave %+v, Measure %+v", q.Format, q, direct)
		}
	}
	// 8 bits per code with a 127-step grid is far finer than any 4-bit one.
	if !(got[2].MSE < got[0].MSE && got[2].MSE < got[1].MSE) {
		t.Errorf("int8 MSE %g not below fp4 %g and int4 %g", got[2].MSE, got[0].MSE, got[1].MSE)
	}

	failing := Named{Name: "broken", Quantize: func([]float32, int, int) (Matrix, error) {
		return nil, errors.New("boom")
	}}
	if _, err := Compare(context.Background(), w, 64, 64, []Named{qs[0], failing}); err == nil || !strings.Contains(err.Error(), `"broken"`) {
		t.Errorf("failing quantizer: got %v, want an error naming it", err)
	}
	if _, err := Compare(context.Background(), w, 64, 64, []Named{{Name: "nil"}}); err == nil {
		t.Error("nil Quantize: got nil error")
	}
	if _, err := Compare(context.Background(), w, 64, 65, qs); err == nil {
		t.Error("bad shape: got nil error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Compare(ctx, w, 64, 64, qs); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: got %v", err)
	}
}

func TestWriteTable(t *testing.T) {
	var buf bytes.Buffer
	err := WriteTable(&buf, []Quality{
		{Format: "nf4", MSE: 3.38e-6, MaxAbsErr: 0.0123, SQNR: 20.7312, BitsPerParam: 4.127},
		{Format: "int4-uniform", MSE: 4.03e-6, MaxAbsErr: 0.01, SQNR: 19.96, BitsPerParam: 4.5},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"format        bits/param  MSE        max |err|  SQNR (dB)\n" +
		"nf4           4.127       3.380e-06  1.230e-02  20.73\n" +
		"int4-uniform  4.500       4.030e-06  1.000e-02  19.96\n"
	if got := buf.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}
