package ggml

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/golora/golora/quant"
)

func goldenMatrix(t testing.TB, typ Type) *Matrix {
	t.Helper()
	m, err := New("golden."+typ.String(), typ, goldenRows, goldenCols, goldenBlocks(t, typ))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func randomX(n, cols int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n*cols)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// TestMulTMatchesDequantizedProduct checks the fused kernels against the
// product of the (ggml-exact) dequantized rows computed in float64. The bound
// is float32 rounding of a sum of cols terms.
func TestMulTMatchesDequantizedProduct(t *testing.T) {
	for _, typ := range goldenTypes {
		t.Run(typ.String(), func(t *testing.T) {
			m := goldenMatrix(t, typ)
			w := make([]float32, goldenRows*goldenCols)
			if err := m.DequantizeRows(w, 0, goldenRows); err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 3, mulTExpandMin + 1} {
				x := randomX(n, goldenCols, 7)
				y := make([]float32, n*goldenRows)
				if err := m.MulT(y, x, n); err != nil {
					t.Fatal(err)
				}
				for i := range n {
					for r := range goldenRows {
						var want, mag float64
						for c := range goldenCols {
							p := float64(x[i*goldenCols+c]) * float64(w[r*goldenCols+c])
							want += p
							mag += math.Abs(p)
						}
						if got := float64(y[i*goldenRows+r]); math.Abs(got-want) > 1e-5*mag+1e-30 {
							t.Errorf("n=%d, x row %d, W row %d: MulT %g, dequantized product %g (Σ|terms| %g)", n, i, r, got, want, mag)
						}
					}
				}
			}
		})
	}
}

// TestMulTLarge runs a product big enough to be split across goroutines and
// checks it against the row-by-row result.
func TestMulTLarge(t *testing.T) {
	const rows, cols, n = 96, 1024, 2
	w := randomX(rows, cols, 3)
	m, err := Quantize(Q4_K, w, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	x := randomX(n, cols, 4)
	y := make([]float32, n*rows)
	if err := m.MulT(y, x, n); err != nil {
		t.Fatal(err)
	}
	for r := range rows {
		row := m.data[r*m.rowBytes : (r+1)*m.rowBytes]
		for i := range n {
			if want := dotQ4_K(row, x[i*cols:(i+1)*cols]); y[i*rows+r] != want {
				t.Fatalf("y[%d, %d] = %g, row kernel gives %g", i, r, y[i*rows+r], want)
			}
		}
	}
}

func TestDequantizeRowsDoesNotAllocate(t *testing.T) {
	for _, typ := range goldenTypes {
		m := goldenMatrix(t, typ)
		dst := make([]float32, goldenRows*goldenCols)
		if a := testing.AllocsPerRun(10, func() { _ = m.DequantizeRows(dst, 1, 4) }); a != 0 {
			t.Errorf("%v: DequantizeRows allocates %v times", typ, a)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	m := goldenMatrix(t, Q6_K)
	x := randomX(1, goldenCols, 5)
	want := make([]float32, goldenRows)
	if err := m.MulT(want, x, 1); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			y := make([]float32, goldenRows)
			dst := make([]float32, goldenCols*goldenRows)
			for range 20 {
				if err := m.MulT(y, x, 1); err != nil {
					t.Error(err)
				}
				if err := m.DequantizeRows(dst, 0, goldenRows); err != nil {
					t.Error(err)
				}
			}
			for r := range y {
				if y[r] != want[r] {
					t.Errorf("row %d: %g, want %g", r, y[r], want[r])
				}
			}
		})
	}
	wg.Wait()
}

func TestReporting(t *testing.T) {
	for typ, bits := range map[Type]float64{Q8_0: 8.5, Q4_0: 4.5, Q4_1: 5, Q5_0: 5.5, Q5_1: 6, Q2_K: 2.625, Q3_K: 3.4375, Q4_K: 4.5, Q5_K: 5.5, Q6_K: 6.5625} {
		m := goldenMatrix(t, typ)
		if got := m.BitsPerParam(); got != bits {
			t.Errorf("%v: %v bits per parameter, want %v", typ, got, bits)
		}
		if m.Format() != typ.String() || m.Type() != typ {
			t.Errorf("%v: Format %q, Type %v", typ, m.Format(), m.Type())
		}
		if r, c := m.Dims(); r != goldenRows || c != goldenCols {
			t.Errorf("%v: Dims %d, %d", typ, r, c)
		}
	}
}

func TestErrors(t *testing.T) {
	q8 := goldenBlocks(t, Q8_0)
	for _, tc := range []struct {
		name       string
		typ        Type
		rows, cols int
		data       []byte
		want       string
	}{
		{"unsupported type", Type(1), 1, 32, make([]byte, 64), `tensor "w": type ggml_type(1) is not supported`},
		{"ragged row", Q4_K, 1, 320, make([]byte, 180), "row of 320 elements is not a positive multiple of its block size 256"},
		{"short data", Q8_0, goldenRows, goldenCols, q8[:len(q8)-1], "3263 bytes of q8_0 data, shape [6, 512] needs 3264"},
		{"zero rows", Q8_0, 0, 32, nil, "rows and cols must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New("w", tc.typ, tc.rows, tc.cols, tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}

	// A NaN scale in row 2, block 5 of a Q4_K matrix is named precisely.
	blocks := append([]byte(nil), goldenBlocks(t, Q4_K)...)
	off := (2*2 + 1) * 144 // two 256-blocks per row of 512
	blocks[off+2], blocks[off+3] = 0x00, 0x7e
	_, err := New("blk.0.ffn_up.weight", Q4_K, goldenRows, goldenCols, blocks)
	if !errors.Is(err, errNonFinite) || !strings.Contains(err.Error(), `"blk.0.ffn_up.weight" (q4_K): row 2, block 1: fp16 0x7e00 at block byte 2`) {
		t.Fatalf("NaN dmin: error %v", err)
	}

	m := goldenMatrix(t, Q8_0)
	if err := m.DequantizeRows(make([]float32, goldenCols), 0, 2); err == nil {
		t.Error("short dst accepted")
	}
	if err := m.DequantizeRows(make([]float32, goldenCols), 5, 7); err == nil {
		t.Error("rows past the end accepted")
	}
	if err := m.MulT(make([]float32, goldenRows), make([]float32, goldenCols-1), 1); err == nil {
		t.Error("short x accepted")
	}
	if err := m.MulT(make([]float32, goldenRows+1), make([]float32, goldenCols), 1); err == nil {
		t.Error("long y accepted")
	}

	w := make([]float32, 2*256)
	w[300] = float32(math.Inf(-1))
	if _, err := QuantizeQ4_K(w, 2, 256); err == nil || !strings.Contains(err.Error(), "row 1, column 44 is -Inf") {
		t.Errorf("Inf weight: error %v", err)
	}
	if _, err := QuantizeQ8_0(make([]float32, 40), 1, 40); err == nil || !strings.Contains(err.Error(), "40 elements is not a positive multiple of its block size 32") {
		t.Errorf("ragged Q8_0: error %v", err)
	}
	big := make([]float32, 64)
	big[40] = 1e7 // its block's scale 1e7/127 is above fp16's 65504
	if _, err := QuantizeQ8_0(big, 1, 64); err == nil || !strings.Contains(err.Error(), "too large for fp16 block scales") || !strings.Contains(err.Error(), "row 0, block 1") {
		t.Errorf("huge weight: error %v", err)
	}
	if _, err := Quantize(Q3_K, make([]float32, 256), 1, 256); err == nil || !strings.Contains(err.Error(), "cannot quantize to q3_K") {
		t.Errorf("Quantize to q3_K: error %v", err)
	}
	if _, ok := QuantizerFor(Q2_K); ok {
		t.Error("QuantizerFor(q2_K) ok")
	}
}

// TestQuantizeRoundTrip checks the quantization error of each quantizer on
// Gaussian weights against its format's resolution: codes of b bits over a
// block's range leave at most about half a step.
func TestQuantizeRoundTrip(t *testing.T) {
	const rows, cols = 8, 512
	w := randomX(rows, cols, 11)
	for _, tc := range []struct {
		q      func([]float32, int, int) (quant.Matrix, error)
		maxRel float64 // max |error| / block absmax
	}{
		{QuantizeQ8_0, 1.0 / 127},
		{QuantizeQ4_0, 1.0 / 8},
		{QuantizeQ4_1, 1.0 / 15},
		{QuantizeQ5_0, 1.0 / 16},
		{QuantizeQ5_1, 1.0 / 31},
		{QuantizeQ4_K, 2.0 / 15},
		{QuantizeQ5_K, 1.0 / 31},
		{QuantizeQ6_K, 1.5 / 32},
	} {
		m, err := tc.q(w, rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, rows*cols)
		if err := m.DequantizeRows(got, 0, rows); err != nil {
			t.Fatal(err)
		}
		var amax, worst float64
		for i := range w {
			amax = max(amax, math.Abs(float64(w[i])))
			worst = max(worst, math.Abs(float64(got[i]-w[i])))
		}
		if worst > tc.maxRel*amax {
			t.Errorf("%s: worst error %g exceeds %g·absmax (%g)", m.Format(), worst, tc.maxRel, amax)
		}
	}
}

// TestFallbackFor checks llama-quantize's fallback rules (llama-quant.cpp,
// tensor_type_fallback) on rows of 4096, 1376 (= 43·32) and 172 elements.
func TestFallbackFor(t *testing.T) {
	for _, tc := range []struct {
		target Type
		cols   int
		want   Type
		ok     bool
	}{
		{Q4_K, 4096, Q4_K, true},
		{Q4_K, 1376, Q5_0, true},
		{Q5_K, 1376, Q5_1, true},
		{Q6_K, 1376, Q8_0, true},
		{Q3_K, 1376, Q4_0, true},
		{Q8_0, 1376, Q8_0, true},
		{Q8_0, 172, 0, false},
		{Q4_K, 172, 0, false},
	} {
		if got, ok := FallbackFor(tc.target, tc.cols); got != tc.want || ok != tc.ok {
			t.Errorf("FallbackFor(%v, %d) = %v, %v; want %v, %v", tc.target, tc.cols, got, ok, tc.want, tc.ok)
		}
	}
}

// TestMulTRowsMatchesMulT: for every format, products assembled from
// MulTRows pieces are MulT's bits (fewer than mulTExpandMin rows of x, or
// any number with the vector kernels), each piece leaves the other entries
// alone, and bad ranges are errors.
func TestMulTRowsMatchesMulT(t *testing.T) {
	ns := []int{1, 3}
	if vectorDot() {
		ns = append(ns, mulTExpandMin+1)
	}
	for _, typ := range goldenTypes {
		m := goldenMatrix(t, typ)
		for _, n := range ns {
			x := randomX(n, goldenCols, 9)
			want := make([]float32, n*goldenRows)
			if err := m.MulT(want, x, n); err != nil {
				t.Fatal(err)
			}
			got := make([]float32, n*goldenRows)
			for i := range got {
				got[i] = float32(math.NaN())
			}
			mid := goldenRows / 2
			for _, cut := range [][2]int{{0, mid}, {mid, goldenRows}} {
				if err := m.MulTRows(got, x, n, cut[0], cut[1]); err != nil {
					t.Fatal(err)
				}
				for i := range n {
					for r := range goldenRows {
						v := got[i*goldenRows+r]
						if r >= cut[0] && r < cut[1] && v != want[i*goldenRows+r] {
							t.Fatalf("%v n %d rows %v: y[%d, %d] = %v, MulT gives %v", typ, n, cut, i, r, v, want[i*goldenRows+r])
						}
						if r >= cut[1] && !math.IsNaN(float64(v)) {
							t.Fatalf("%v n %d rows %v: y[%d, %d] written outside the range", typ, n, cut, i, r)
						}
					}
				}
			}
		}
		x := make([]float32, goldenCols)
		y := make([]float32, goldenRows)
		for _, bad := range [][2]int{{-1, 1}, {0, goldenRows + 1}, {2, 1}} {
			if err := m.MulTRows(y, x, 1, bad[0], bad[1]); err == nil {
				t.Errorf("%v: MulTRows rows %v: no error", typ, bad)
			}
		}
		if err := m.MulTRows(y[:goldenRows-1], x, 1, 0, 1); err == nil {
			t.Errorf("%v: MulTRows with a short y: no error", typ)
		}
	}
}
