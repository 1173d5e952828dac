package quant

import (
	"context"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// Quality summarizes how far a quantized matrix is from the weight it came
// from.
type Quality struct {
	// Format names the matrix's format, or the quantizer's name in Compare.
	Format string
	// MSE is the mean squared error over all elements.
	MSE float64
	// MaxAbsErr is the largest absolute error of any element.
	MaxAbsErr float64
	// SQNR is the signal-to-quantization-noise ratio in dB:
	// 10·log10(Σw² / Σ(w−ŵ)²); +Inf when the error is zero.
	SQNR float64
	// BitsPerParam is the matrix's storage cost per element.
	BitsPerParam float64
}

// measureTileElems bounds the float32 buffer Measure dequantizes into, so
// that measuring a large matrix never materializes it whole.
const measureTileElems = 1 << 16

// Measure compares m with the row-major weight w it was quantized from. It
// dequantizes a tile of rows at a time and accumulates in float64. It returns
// an error if w's length does not match m's shape, if w holds NaN or ±Inf, or
// if dequantizing fails.
func Measure(w []float32, m Matrix) (Quality, error) {
	rows, cols := m.Dims()
	if rows <= 0 || cols <= 0 || len(w) != rows*cols {
		return Quality{}, fmt.Errorf("quant: measuring %s: weight has %d elements, matrix shape [%d, %d]", m.Format(), len(w), rows, cols)
	}
	tileRows := max(1, measureTileElems/cols)
	buf := make([]float32, min(tileRows, rows)*cols)
	var sumErr2, sumSig2, maxAbs float64
	for start := 0; start < rows; start += tileRows {
		end := min(start+tileRows, rows)
		got := buf[:(end-start)*cols]
		if err := m.DequantizeRows(got, start, end); err != nil {
			return Quality{}, fmt.Errorf("quant: measuring %s: rows [%d, %d): %w", m.Format(), start, end, err)
		}
		for i, v := range w[start*cols : end*cols] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return Quality{}, fmt.Errorf("quant: measuring %s: weight element %d (row %d, col %d) is %v: %w",
					m.Format(), start*cols+i, start+i/cols, i%cols, v, ErrNonFinite)
			}
			d := float64(v) - float64(got[i])
			// The conversions keep the compiler from fusing into FMA on some
			// architectures, so figures are the same on every machine.
			sumErr2 += float64(d * d)
			sumSig2 += float64(float64(v) * float64(v))
			maxAbs = max(maxAbs, math.Abs(d))
		}
	}
	n := float64(len(w))
	q := Quality{
		Format:       m.Format(),
		MSE:          sumErr2 / n,
		MaxAbsErr:    maxAbs,
		SQNR:         math.Inf(1),
		BitsPerParam: m.BitsPerParam(),
	}
	if sumErr2 > 0 {
		q.SQNR = 10 * math.Log10(sumSig2/sumErr2)
	}
	return q, nil
}

// Compile-time checks that every format here satisfies Matrix.
var (
	_ Matrix = (*FP4)(nil)
	_ Matrix = (*Int4)(nil)
	_ Matrix = (*Int8)(nil)
)

// Quantizer converts a dense row-major [rows, cols] weight into a quantized
// matrix. It must not keep a reference to w: callers drop w afterwards so
// that the garbage collector can free it. nf4.Quantizer and the constructors
// below return one for each format.
type Quantizer func(w []float32, rows, cols int) (Matrix, error)

// Named is a Quantizer with the name Compare reports it under.
type Named struct {
	Name     string
	Quantize Quantizer
}

// FP4Quantizer returns a Quantizer running QuantizeFP4.
func FP4Quantizer(blockSize int) Quantizer {
	return blockQuantizer(QuantizeFP4, blockSize)
}

// Int4Quantizer returns a Quantizer running QuantizeInt4.
func Int4Quantizer(blockSize int) Quantizer {
	return blockQuantizer(QuantizeInt4, blockSize)
}

// Int8Quantizer returns a Quantizer running QuantizeInt8.
func Int8Quantizer(blockSize int) Quantizer {
	return blockQuantizer(QuantizeInt8, blockSize)
}

// blockQuantizer returns a Quantizer running quantize with blockSize. On an
// error it returns a nil Matrix, not quantize's nil pointer in a non-nil
// interface.
func blockQuantizer[M Matrix](quantize func(w []float32, rows, cols, blockSize int) (M, error), blockSize int) Quantizer {
	return func(w []float32, rows, cols int) (Matrix, error) {
		m, err := quantize(w, rows, cols, blockSize)
		if err != nil {
			return nil, err
		}
		return m, nil
	}
}

// Compare quantizes the row-major weight w of shape [rows, cols] with each
// quantizer in turn and measures the result; each Quality's Format is the
// quantizer's Name. It stops at the first error, or when ctx is done before
// the next quantizer starts.
func Compare(ctx context.Context, w []float32, rows, cols int, qs []Named) ([]Quality, error) {
	out := make([]Quality, 0, len(qs))
	for _, q := range qs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("quant: compare: %w", err)
		}
		if q.Quantize == nil {
			return nil, fmt.Errorf("quant: compare: quantizer %q has no Quantize function", q.Name)
		}
		m, err := q.Quantize(w, rows, cols)
		if err != nil {
			return nil, fmt.Errorf("quant: compare: quantizer %q: %w", q.Name, err)
		}
		qual, err := Measure(w, m)
		if err != nil {
			return nil, fmt.Errorf("quant: compare: quantizer %q: %w", q.Name, err)
		}
		qual.Format = q.Name
		out = append(out, qual)
	}
	return out, nil
}

// WriteTable writes qs as an aligned text table, one row per Quality.
func WriteTable(w io.Writer, qs []Quality) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "format\tbits/param\tMSE\tmax |err|\tSQNR (dB)")
	for _, q := range qs {
		fmt.Fprintf(tw, "%s\t%.3f\t%.3e\t%.3e\t%.2f\n", q.Format, q.BitsPerParam, q.MSE, q.MaxAbsErr, q.SQNR)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("quant: writing quality table: %w", err)
	}
	return nil
}
