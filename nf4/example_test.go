package nf4_test

import (
	"fmt"
	"math"

	"github.com/golora/golora/nf4"
)

func Example() {
	// A 4×64 weight, quantized as QLoRA does: blocks of 64, double
	// quantization on.
	const rows, cols = 4, 64
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(0.02 * math.Sin(float64(i)))
	}
	m, err := nf4.Quantize(w, rows, cols, nf4.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s, %d×%d, %.3f bits per weight\n", m.Format(), rows, cols, m.BitsPerParam())

	// Decode one row, as a training step does tile by tile.
	row := make([]float32, cols)
	if err := m.DequantizeRows(row, 2, 3); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("w[2][1] = %.5f, stored as %.5f\n", w[2*cols+1], row[1])

	// y = x·Wᵀ straight from the 4-bit codes.
	x := make([]float32, cols)
	x[1] = 1 // picks column 1 of every row
	y := make([]float32, rows)
	if err := m.MulT(y, x, 1); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("y[2] = %.5f\n", y[2])
	// Output:
	// nf4, 4×64, 4.375 bits per weight
	// w[2][1] = -0.00387, stored as -0.00369
	// y[2] = -0.00369
}
