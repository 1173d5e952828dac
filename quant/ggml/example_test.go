package ggml_test

import (
	"fmt"
	"log"
	"math"

	"github.com/golora/golora/quant/ggml"
)

// A weight quantized to Q4_K keeps ggml's blocks; New wraps such blocks (as
// read from a GGUF tensor) without copying, and the matrix multiplies
// straight from them.
func Example() {
	const rows, cols = 4, 256
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(math.Sin(float64(i)))
	}
	q, err := ggml.QuantizeQ4_K(w, rows, cols)
	if err != nil {
		log.Fatal(err)
	}
	m, err := ggml.New("blk.0.attn_q.weight", ggml.Q4_K, rows, cols, q.(*ggml.Matrix).Blocks())
	if err != nil {
		log.Fatal(err)
	}
	x := make([]float32, cols)
	x[3] = 1
	y := make([]float32, rows)
	if err := m.MulT(y, x, 1); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, %.1f bits per weight, %d bytes\n", m.Format(), m.BitsPerParam(), m.StorageBytes())
	fmt.Printf("w[0][3] = %.3f, quantized %.3f\n", w[3], y[0])
	// Output:
	// q4_K, 4.5 bits per weight, 576 bytes
	// w[0][3] = 0.141, quantized 0.121
}
