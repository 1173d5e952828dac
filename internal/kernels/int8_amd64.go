package kernels

import "github.com/golora/golora/internal/cpu"

// int8Rows writes into y[:rows] the products of rows consecutive rows of an
// Int8Matrix (blocks scales each, starting at codes and scales) with x,
// with the assembly of level l (AVX2 or AVX-512), in int8DotGeneric's order.
func int8Rows(l cpu.Level, y []float32, codes []int8, scales, x []float32, rows, blocks int) {
	_ = y[rows-1]
	_ = codes[rows*blocks*Int8Block-1]
	_ = scales[rows*blocks-1]
	_ = x[blocks*Int8Block-1]
	if l >= cpu.AVX512 {
		int8RowsAVX512(&y[0], &codes[0], &scales[0], &x[0], rows, blocks)
		return
	}
	int8RowsAVX2(&y[0], &codes[0], &scales[0], &x[0], rows, blocks)
}

// int8RowsAVX512 writes y[r] for rows positive rows of blocks positive
// blocks each.
//
//go:noescape
func int8RowsAVX512(y *float32, codes *int8, scales *float32, x *float32, rows, blocks int)

// int8RowsAVX2 is int8RowsAVX512 with AVX2, its 16 lanes in two registers.
//
//go:noescape
func int8RowsAVX2(y *float32, codes *int8, scales *float32, x *float32, rows, blocks int)
