package ggml

import (
	"testing"
)

// FuzzNew feeds arbitrary bytes as blocks of every format: New either rejects
// them with an error or returns a matrix whose every method works without
// panicking, and whose fused product agrees with its dequantized rows.
func FuzzNew(f *testing.F) {
	for _, typ := range goldenTypes {
		blocks := goldenBlocks(f, typ)
		_, bb, _ := typ.BlockSize()
		f.Add(uint8(typ), uint8(1), blocks[:2*bb]) // the first row's first two blocks of ggml's blocks
	}
	f.Fuzz(func(t *testing.T, typeID, rows uint8, data []byte) {
		typ := Type(typeID)
		elems, blockBytes, ok := typ.BlockSize()
		if !ok || rows == 0 {
			return
		}
		r := int(rows%4) + 1
		blocksPerRow := len(data) / blockBytes / r
		if blocksPerRow == 0 {
			return
		}
		cols := blocksPerRow * elems
		m, err := New("fuzz", typ, r, cols, data[:r*blocksPerRow*blockBytes])
		if err != nil {
			return
		}
		w := make([]float32, r*cols)
		if err := m.DequantizeRows(w, 0, r); err != nil {
			t.Fatal(err)
		}
		x := make([]float32, cols)
		for i := range x {
			x[i] = float32(i%7) - 3
		}
		y := make([]float32, r)
		if err := m.MulT(y, x, 1); err != nil {
			t.Fatal(err)
		}
		for i := range r {
			var want, mag float64
			for c := range cols {
				p := float64(w[i*cols+c]) * float64(x[c])
				want += p
				mag += max(p, -p)
			}
			if d := float64(y[i]) - want; max(d, -d) > 1e-5*mag+1e-30 {
				t.Fatalf("row %d: MulT %g, dequantized product %g", i, y[i], want)
			}
		}
	})
}
