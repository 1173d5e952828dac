package quant

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// quantizeAll quantizes w with every format of this package.
func quantizeAll(t *testing.T, w []float32, rows, cols, blockSize int) []Matrix {
	t.Helper()
	fp4, err := QuantizeFP4(w, rows, cols, blockSize)
	if err != nil {
		t.Fatal(err)
	}
	int4, err := QuantizeInt4(w, rows, cols, blockSize)
	if err != nil {
		t.Fatal(err)
	}
	int8, err := QuantizeInt8(w, rows, cols, blockSize)
	if err != nil {
		t.Fatal(err)
	}
	return []Matrix{fp4, int4, int8}
}

func gaussian(seed uint64, n int, std float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0))
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(r.NormFloat64() * std)
	}
	return w
}

func TestPartialBlockAndOddLength(t *testing.T) {
	// 3×11 = 33 elements in blocks of 32: block 1 is the lone last element,
	// and the odd count pads the last 4-bit byte with a zero low nibble.
	w := gaussian(1, 33, 1)
	w[32] = -127 // its block's absmax; −absmax is exact in every format
	for _, m := range quantizeAll(t, w, 3, 11, 32) {
		got := make([]float32, 33)
		if err := m.DequantizeRows(got, 0, 3); err != nil {
			t.Fatal(err)
		}
		if got[32] != -127 {
			t.Errorf("%s: last element = %v, want −127", m.Format(), got[32])
		}
	}
	fp4, _ := QuantizeFP4(w, 3, 11, 32)
	// −1 in FP4 is code 0b1011; the padding nibble is 0.
	if len(fp4.packed) != 17 || fp4.packed[16] != 0xb0 {
		t.Errorf("fp4 packed has %d bytes, last %#02x; want 17, 0xb0", len(fp4.packed), fp4.packed[len(fp4.packed)-1])
	}
	int4, _ := QuantizeInt4(w, 3, 11, 32)
	// −1 in Int4 is level 0.
	if len(int4.packed) != 17 || int4.packed[16] != 0x00 {
		t.Errorf("int4 packed has %d bytes, last %#02x; want 17, 0x00", len(int4.packed), int4.packed[len(int4.packed)-1])
	}
}

func TestStorageBytes(t *testing.T) {
	cases := []struct {
		rows, cols, bs int
		// codes + 4 bytes per absmax, counted by hand.
		fp4, int8 int64
	}{
		// 33 elements, 2 blocks: ⌈33/2⌉ = 17 code bytes + 8; int8 33 + 8.
		{3, 11, 32, 25, 41},
		// 4096 elements, 64 blocks: 2048 + 256 = 2304 (4.5 bits/param, the
		// NF4-without-double-quantization figure of formats.md); int8 4096 + 256.
		{64, 64, 64, 2304, 4352},
		// 1 element: 1 byte + 4.
		{1, 1, 4096, 5, 5},
	}
	for _, c := range cases {
		w := gaussian(2, c.rows*c.cols, 1)
		ms := quantizeAll(t, w, c.rows, c.cols, c.bs)
		want := []int64{c.fp4, c.fp4, c.int8}
		for i, m := range ms {
			if got := m.StorageBytes(); got != want[i] {
				t.Errorf("%s %dx%d block %d: StorageBytes = %d, want %d", m.Format(), c.rows, c.cols, c.bs, got, want[i])
			}
			wantBits := 8 * float64(want[i]) / float64(c.rows*c.cols)
			if got := m.BitsPerParam(); got != wantBits {
				t.Errorf("%s: BitsPerParam = %v, want %v", m.Format(), got, wantBits)
			}
			if r, cl := m.Dims(); r != c.rows || cl != c.cols {
				t.Errorf("%s: Dims = %d, %d; want %d, %d", m.Format(), r, cl, c.rows, c.cols)
			}
		}
	}
	fp4, _ := QuantizeFP4(gaussian(3, 4096, 1), 64, 64, 64)
	if got := fp4.BitsPerParam(); got != 4.5 {
		t.Errorf("fp4 block 64 BitsPerParam = %v, want 4.5", got)
	}
}

func TestDequantizeRowsRanges(t *testing.T) {
	// 7 rows of 45 columns in blocks of 32: rows and blocks do not align.
	const rows, cols = 7, 45
	w := gaussian(4, rows*cols, 0.02)
	for _, m := range quantizeAll(t, w, rows, cols, 32) {
		full := make([]float32, rows*cols)
		if err := m.DequantizeRows(full, 0, rows); err != nil {
			t.Fatal(err)
		}
		for start := 0; start <= rows; start++ {
			for end := start; end <= rows; end++ {
				// One extra sentinel element must be left alone.
				got := make([]float32, (end-start)*cols+1)
				got[len(got)-1] = 42
				if err := m.DequantizeRows(got, start, end); err != nil {
					t.Fatalf("%s [%d, %d): %v", m.Format(), start, end, err)
				}
				for i, v := range got[:len(got)-1] {
					if v != full[start*cols+i] {
						t.Fatalf("%s [%d, %d): element %d = %v, full has %v", m.Format(), start, end, i, v, full[start*cols+i])
					}
				}
				if got[len(got)-1] != 42 {
					t.Fatalf("%s [%d, %d): wrote past the range", m.Format(), start, end)
				}
			}
		}
	}
}

func TestDequantizeRowsNoAlloc(t *testing.T) {
	const rows, cols = 16, 100
	w := gaussian(5, rows*cols, 0.02)
	dst := make([]float32, rows*cols)
	for _, m := range quantizeAll(t, w, rows, cols, 64) {
		allocs := testing.AllocsPerRun(20, func() {
			if err := m.DequantizeRows(dst, 3, 11); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: DequantizeRows allocated %v times per run", m.Format(), allocs)
		}
	}
}

func TestMulTMatchesDequantize(t *testing.T) {
	const rows, cols = 9, 77 // partial blocks, rows not aligned to blocks
	w := gaussian(6, rows*cols, 0.02)
	for _, m := range quantizeAll(t, w, rows, cols, 32) {
		deq := make([]float32, rows*cols)
		if err := m.DequantizeRows(deq, 0, rows); err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 1, 2, 5} {
			x := gaussian(uint64(7+n), n*cols, 1)
			y := make([]float32, n*rows)
			for i := range y {
				y[i] = float32(math.NaN()) // MulT must overwrite, not accumulate
			}
			if err := m.MulT(y, x, n); err != nil {
				t.Fatalf("%s n=%d: %v", m.Format(), n, err)
			}
			for i := range n {
				for r := range rows {
					var ref, mag float64
					for c := range cols {
						p := float64(x[i*cols+c]) * float64(deq[r*cols+c])
						ref += p
						mag += math.Abs(p)
					}
					// MulT skips the float32 rounding of each dequantized
					// weight (relative 2⁻²⁴) and rounds y to float32 once.
					tol := 1e-6*mag + 1e-7*math.Abs(ref)
					if got := float64(y[i*rows+r]); !(math.Abs(got-ref) <= tol) {
						t.Errorf("%s n=%d y[%d,%d] = %v, want %v ± %.2g", m.Format(), n, i, r, got, ref, tol)
					}
				}
			}
		}
	}
}

func TestQuantizeErrors(t *testing.T) {
	ok := gaussian(8, 64, 1)
	nan := append([]float32(nil), ok...)
	nan[50] = float32(math.NaN())
	inf := append([]float32(nil), ok...)
	inf[3] = float32(math.Inf(-1))
	cases := []struct {
		name           string
		w              []float32
		rows, cols, bs int
		is             error
		mention        string
	}{
		{"zero rows", ok, 0, 64, 32, nil, "positive"},
		{"negative cols", ok, 1, -64, 32, nil, "positive"},
		{"length", ok, 8, 9, 32, nil, "64 elements"},
		{"nil weight", nil, 1, 1, 32, nil, "0 elements"},
		{"block 48", ok, 8, 8, 48, ErrBlockSize, "48"},
		{"block 16", ok, 8, 8, 16, ErrBlockSize, "16"},
		{"block 8192", ok, 8, 8, 8192, ErrBlockSize, "8192"},
		{"NaN", nan, 8, 8, 32, ErrNonFinite, "block 1"},
		{"-Inf", inf, 8, 8, 32, ErrNonFinite, "element 3"},
		{"overflow", ok, math.MaxInt / 2, 4, 32, nil, "overflows"},
	}
	quantizers := map[string]func(w []float32, rows, cols, bs int) (Matrix, error){
		"fp4":  func(w []float32, r, c, bs int) (Matrix, error) { return QuantizeFP4(w, r, c, bs) },
		"int4": func(w []float32, r, c, bs int) (Matrix, error) { return QuantizeInt4(w, r, c, bs) },
		"int8": func(w []float32, r, c, bs int) (Matrix, error) { return QuantizeInt8(w, r, c, bs) },
	}
	for format, quantize := range quantizers {
		for _, c := range cases {
			_, err := quantize(c.w, c.rows, c.cols, c.bs)
			if err == nil {
				t.Errorf("%s %s: got nil error", format, c.name)
				continue
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("%s %s: error %v does not wrap %v", format, c.name, err, c.is)
			}
			if msg := err.Error(); !strings.Contains(msg, c.mention) || !strings.Contains(msg, format) {
				t.Errorf("%s %s: error %q should mention %q and the format", format, c.name, msg, c.mention)
			}
		}
	}
}

func TestMethodErrors(t *testing.T) {
	const rows, cols = 4, 40
	w := gaussian(9, rows*cols, 1)
	for _, m := range quantizeAll(t, w, rows, cols, 32) {
		dst := make([]float32, rows*cols)
		for _, r := range [][2]int{{-1, 2}, {0, 5}, {3, 2}, {5, 5}} {
			if err := m.DequantizeRows(dst, r[0], r[1]); err == nil {
				t.Errorf("%s: DequantizeRows(%d, %d): got nil error", m.Format(), r[0], r[1])
			}
		}
		if err := m.DequantizeRows(dst[:79], 1, 3); err == nil {
			t.Errorf("%s: DequantizeRows into a short dst: got nil error", m.Format())
		}
		if err := m.DequantizeRows(nil, 2, 2); err != nil {
			t.Errorf("%s: empty range: %v", m.Format(), err)
		}
		x := make([]float32, 2*cols)
		y := make([]float32, 2*rows)
		for _, c := range []struct {
			y, x []float32
			n    int
		}{
			{y, x[:cols+1], 2}, {y[:rows], x, 2}, {y, x, 3}, {nil, nil, -1}, {y, x, math.MaxInt / 2},
		} {
			if err := m.MulT(c.y, c.x, c.n); err == nil {
				t.Errorf("%s: MulT(len %d, len %d, %d): got nil error", m.Format(), len(c.y), len(c.x), c.n)
			}
		}
		if err := m.MulT(nil, nil, 0); err != nil {
			t.Errorf("%s: MulT with n = 0: %v", m.Format(), err)
		}
	}
}
