package quant_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/quant"
)

// halfMatrices returns a random [rows, cols] weight rounded to BF16 and to
// F16, as matrices and widened back to float32.
func halfMatrices(t testing.TB, rows, cols int) (ms []*quant.Half, dense [][]float32) {
	rng := rand.New(rand.NewPCG(uint64(rows), uint64(cols)))
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	for _, to := range []func([]float32, int, int) (*quant.Half, error){quant.ToBF16, quant.ToF16} {
		m, err := to(w, rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		d := make([]float32, rows*cols)
		for i, h := range m.Values() {
			if m.IsF16() {
				d[i] = half.F16ToFloat32(h)
			} else {
				d[i] = half.BF16ToFloat32(h)
			}
		}
		ms, dense = append(ms, m), append(dense, d)
	}
	return ms, dense
}

// TestHalfDequantize checks that DequantizeRows and DequantizeBlock give
// the exact widened values, and that ToBF16 keeps BF16 values exactly.
func TestHalfDequantize(t *testing.T) {
	const rows, cols = 9, 70
	ms, dense := halfMatrices(t, rows, cols)
	for k, m := range ms {
		got := make([]float32, rows*cols)
		if err := m.DequantizeRows(got, 0, rows); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(dense[k][i]) {
				t.Fatalf("%s: element %d: %v, want %v", m.Format(), i, got[i], dense[k][i])
			}
		}
		const ld = 40
		block := make([]float32, 3*ld)
		if err := m.DequantizeBlock(block, ld, 2, 5, 17, 51); err != nil {
			t.Fatal(err)
		}
		for r := 2; r < 5; r++ {
			for c := 17; c < 51; c++ {
				if g, w := block[(r-2)*ld+c-17], dense[k][r*cols+c]; g != w {
					t.Fatalf("%s: block [%d, %d]: %v, want %v", m.Format(), r, c, g, w)
				}
			}
		}
		if m.StorageBytes() != 2*rows*cols || m.BitsPerParam() != 16 {
			t.Fatalf("%s: %d bytes, %v bits per parameter", m.Format(), m.StorageBytes(), m.BitsPerParam())
		}
	}
	again, err := quant.ToBF16(dense[0], rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range again.Values() {
		if h != ms[0].Values()[i] {
			t.Fatalf("ToBF16 of BF16 values changed element %d", i)
		}
	}
}

// TestHalfMulT checks MulT against MatVec on the same 16-bit rows (bit for
// bit, row by row and whatever the split), against a
// float64 product (within rounding), and that MulTRows leaves the other
// entries alone.
func TestHalfMulT(t *testing.T) {
	for _, shape := range [][3]int{{1, 1, 1}, {7, 33, 3}, {130, 288, 2}, {1030, 1100, 1}} {
		rows, cols, n := shape[0], shape[1], shape[2]
		ms, dense := halfMatrices(t, rows, cols)
		x := make([]float32, n*cols)
		rng := rand.New(rand.NewPCG(3, 4))
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		for k, m := range ms {
			y := make([]float32, n*rows)
			if err := m.MulT(y, x, n); err != nil {
				t.Fatal(err)
			}
			part := make([]float32, n*rows)
			for i := range part {
				part[i] = -7
			}
			lo, hi := rows/3, rows/3+rows/2
			if err := m.MulTRows(part, x, n, lo, hi); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				row := make([]float32, rows)
				if m.IsF16() {
					half.MatVecF16(row, x[i*cols:(i+1)*cols], m.Values())
				} else {
					half.MatVecBF16(row, x[i*cols:(i+1)*cols], m.Values())
				}
				for r := range rows {
					got := y[i*rows+r]
					if math.Float32bits(got) != math.Float32bits(row[r]) {
						t.Fatalf("%s [%d %d] n=%d: y[%d, %d] = %v, MatVec %v", m.Format(), rows, cols, n, i, r, got, row[r])
					}
					var exact float64
					for c := range cols {
						exact += float64(x[i*cols+c]) * float64(dense[k][r*cols+c])
					}
					if math.Abs(float64(got)-exact) > 1e-5*float64(cols) {
						t.Fatalf("%s: y[%d, %d] = %v, float64 %v", m.Format(), i, r, got, exact)
					}
					p := part[i*rows+r]
					if in := r >= lo && r < hi; in && p != got || !in && p != -7 {
						t.Fatalf("%s: MulTRows [%d, %d): y[%d, %d] = %v (MulT %v)", m.Format(), lo, hi, i, r, p, got)
					}
				}
			}
		}
	}
}

// TestHalfErrors checks that bad shapes and arguments are errors.
func TestHalfErrors(t *testing.T) {
	if _, err := quant.NewBF16(make([]uint16, 5), 2, 3); err == nil {
		t.Error("NewBF16 accepted 5 values for [2, 3]")
	}
	if _, err := quant.NewF16(nil, 0, 3); err == nil {
		t.Error("NewF16 accepted [0, 3]")
	}
	m, err := quant.NewBF16(make([]uint16, 6), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.DequantizeRows(make([]float32, 3), 0, 2); err == nil {
		t.Error("DequantizeRows accepted a short destination")
	}
	if err := m.DequantizeBlock(make([]float32, 6), 3, 0, 3, 0, 3); err == nil {
		t.Error("DequantizeBlock accepted rows beyond the matrix")
	}
	if err := m.MulT(make([]float32, 2), make([]float32, 4), 1); err == nil {
		t.Error("MulT accepted x of the wrong length")
	}
	if err := m.MulTRows(make([]float32, 2), make([]float32, 3), 1, 1, 3); err == nil {
		t.Error("MulTRows accepted rows beyond the matrix")
	}
	nan, err := quant.ToBF16([]float32{1, 2, float32(math.NaN()), 4}, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if i := nan.FirstNonFinite(); i != 2 {
		t.Errorf("FirstNonFinite = %d, want 2", i)
	}
	if i := m.FirstNonFinite(); i != -1 {
		t.Errorf("FirstNonFinite of zeros = %d, want -1", i)
	}
}

// BenchmarkHalfMulT compares a decode step's head product, one row, with
// the BF16 head against the float32 one (kernels.DenseMulT, the same
// values): the 16-bit head reads half the bytes.
func BenchmarkHalfMulT(b *testing.B) {
	for _, shape := range [][2]int{{32000, 288}, {32000, 768}} {
		rows, cols := shape[0], shape[1]
		ms, dense := halfMatrices(b, rows, cols)
		x := make([]float32, cols)
		for i := range x {
			x[i] = 1 / float32(i+1)
		}
		y := make([]float32, rows)
		report := func(b *testing.B, bytes int) {
			b.ReportMetric(float64(bytes)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			b.ReportMetric(float64(rows*cols)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gweights/s")
		}
		name := func(s string) string { return fmt.Sprintf("%s/%dx%d", s, rows, cols) }
		b.Run(name("bf16"), func(b *testing.B) {
			for b.Loop() {
				if err := ms[0].MulT(y, x, 1); err != nil {
					b.Fatal(err)
				}
			}
			report(b, 2*rows*cols)
		})
		b.Run(name("f32"), func(b *testing.B) {
			for b.Loop() {
				kernels.DenseMulT(y, x, dense[0], 1, cols, rows)
			}
			report(b, 4*rows*cols)
		})
	}
}
