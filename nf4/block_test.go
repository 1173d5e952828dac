package nf4

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDequantizeBlockMatchesRows: every block, whole rows or not, aligned to
// the quantization blocks or not, has the bits of the same elements from
// DequantizeRows, and the padding between its rows is left alone.
func TestDequantizeBlockMatchesRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	const rows, cols = 9, 200
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	for _, opts := range []Options{{}, {DisableDoubleQuant: true}, {BlockSize: 32}} {
		m, err := Quantize(w, rows, cols, opts)
		if err != nil {
			t.Fatal(err)
		}
		full := make([]float32, rows*cols)
		if err := m.DequantizeRows(full, 0, rows); err != nil {
			t.Fatal(err)
		}
		for _, b := range [][4]int{{0, 9, 0, 200}, {2, 7, 0, 200}, {0, 9, 64, 128}, {1, 8, 3, 197}, {4, 5, 17, 18}, {3, 3, 0, 10}} {
			r0, r1, c0, c1 := b[0], b[1], b[2], b[3]
			for _, ld := range []int{c1 - c0, c1 - c0 + 5, cols} {
				if ld == 0 {
					continue
				}
				dst := make([]float32, (r1-r0)*ld)
				for i := range dst {
					dst[i] = -7
				}
				if err := m.DequantizeBlock(dst, ld, r0, r1, c0, c1); err != nil {
					t.Fatal(err)
				}
				for r := r0; r < r1; r++ {
					for c := 0; c < ld; c++ {
						got := dst[(r-r0)*ld+c]
						want := float32(-7)
						if c < c1-c0 {
							want = full[r*cols+c0+c]
						}
						if math.Float32bits(got) != math.Float32bits(want) {
							t.Fatalf("%+v block %v ld %d: [%d, %d] = %v, want %v", opts, b, ld, r, c, got, want)
						}
					}
				}
			}
		}
	}
}

func TestDequantizeBlockRejectsBadRanges(t *testing.T) {
	m, err := Quantize(make([]float32, 4*64), 4, 64, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 4*64)
	for _, b := range [][5]int{{64, -1, 2, 0, 64}, {64, 0, 5, 0, 64}, {64, 3, 2, 0, 64}, {64, 0, 4, 0, 65}, {64, 0, 4, 10, 9}, {10, 0, 4, 0, 20}} {
		if err := m.DequantizeBlock(dst, b[0], b[1], b[2], b[3], b[4]); err == nil {
			t.Errorf("ld %d rows [%d, %d) cols [%d, %d) accepted", b[0], b[1], b[2], b[3], b[4])
		}
	}
	if err := m.DequantizeBlock(dst[:100], 64, 0, 4, 0, 64); err == nil {
		t.Error("short destination accepted")
	}
}
