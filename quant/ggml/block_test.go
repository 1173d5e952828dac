package ggml

import (
	"math"
	"testing"
)

// TestDequantizeBlockMatchesRows: for every format, any block of rows and
// columns (on block boundaries or not) is DequantizeRows' bits, the rest of
// the destination is left alone, and bad ranges are errors.
func TestDequantizeBlockMatchesRows(t *testing.T) {
	for _, typ := range goldenTypes {
		m := goldenMatrix(t, typ)
		rows := make([]float32, goldenRows*goldenCols)
		if err := m.DequantizeRows(rows, 0, goldenRows); err != nil {
			t.Fatal(err)
		}
		for _, c := range [][4]int{
			{0, goldenRows, 0, goldenCols},
			{1, 3, 0, 32},
			{0, 2, 32, 64},
			{2, goldenRows, 7, goldenCols - 5},
			{1, 2, goldenCols - 1, goldenCols},
			{0, 1, 3, 3},
		} {
			r0, r1, c0, c1 := c[0], c[1], c[2], c[3]
			ld := c1 - c0 + 3
			dst := make([]float32, (r1-r0)*ld)
			for i := range dst {
				dst[i] = float32(math.NaN())
			}
			if err := m.DequantizeBlock(dst, ld, r0, r1, c0, c1); err != nil {
				t.Fatalf("%v %v: %v", typ, c, err)
			}
			for r := r0; r < r1; r++ {
				for j := range ld {
					got := dst[(r-r0)*ld+j]
					if j < c1-c0 {
						if want := rows[r*goldenCols+c0+j]; math.Float32bits(got) != math.Float32bits(want) {
							t.Fatalf("%v %v: [%d, %d] = %v, DequantizeRows gives %v", typ, c, r, c0+j, got, want)
						}
					} else if !math.IsNaN(float64(got)) {
						t.Fatalf("%v %v: wrote column %d of the padding", typ, c, j)
					}
				}
			}
		}
		for _, bad := range [][4]int{{-1, 1, 0, 1}, {0, goldenRows + 1, 0, 1}, {0, 1, 2, 1}, {0, 1, 0, goldenCols + 1}} {
			if err := m.DequantizeBlock(make([]float32, goldenRows*goldenCols), goldenCols, bad[0], bad[1], bad[2], bad[3]); err == nil {
				t.Errorf("%v: block %v is not an error", typ, bad)
			}
		}
		if err := m.DequantizeBlock(make([]float32, 10), goldenCols, 0, 2, 0, goldenCols); err == nil {
			t.Errorf("%v: a short destination is not an error", typ)
		}
	}
}
