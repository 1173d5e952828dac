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

// A decode step's product the way llama.cpp runs its 4-bit formats: the
// vector quantized to int8 once, integer dot products with the NF4 codes.
func ExampleMatrix_MulVecInt8Rows() {
	const rows, cols = 2, 128
	w := make([]float32, rows*cols)
	x := make([]float32, cols)
	for i := range w {
		w[i] = float32(math.Sin(float64(i)))
	}
	for i := range x {
		x[i] = float32(math.Cos(float64(i)))
	}
	m, err := nf4.Quantize(w, rows, cols, nf4.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	exact := make([]float32, rows)
	if err := m.MulT(exact, x, 1); err != nil {
		fmt.Println(err)
		return
	}
	var v nf4.Int8Vector
	if err := v.Quantize(x); err != nil {
		fmt.Println(err)
		return
	}
	approx := make([]float32, rows)
	if err := m.MulVecInt8Rows(approx, &v, m.Absmax(), 0, rows); err != nil {
		fmt.Println(err)
		return
	}
	for r := range rows {
		fmt.Printf("row %d: exact %.2f, int8 %.2f\n", r, exact[r], approx[r])
	}
	// Output:
	// row 0: exact 0.10, int8 0.12
	// row 1: exact 46.67, int8 46.64
}
