package model

import "fmt"

// The two RoPE row layouts of query and key projections: Meta, llama2.c and
// GGUF pair rows (2i, 2i+1) of a head, Hugging Face pairs (i, i+headDim/2).
// Weights always hold the Hugging Face layout.

// interleavedToHalves permutes, in place, the rows of a query or key
// projection w ([heads·headDim, cols], row-major) from the interleaved-pairs
// RoPE layout of Meta, llama2.c and GGUF to Hugging Face's rotate-halves
// layout. Within each head, the pair of rows (2i, 2i+1) that RoPE rotates
// together becomes the pair (i, i+headDim/2), so the head's rows are taken in
// the order 0, 2, 4, …, 1, 3, 5, …. This is the permutation Hugging Face's
// convert_llama_weights_to_hf applies; halvesToInterleaved undoes it.
func interleavedToHalves(w []float32, heads, headDim, cols int) error {
	return permuteHeads(w, heads, headDim, cols, func(dst, src []float32) {
		half := headDim / 2
		for i := range half {
			copy(dst[i*cols:(i+1)*cols], src[(2*i)*cols:(2*i+1)*cols])
			copy(dst[(half+i)*cols:(half+i+1)*cols], src[(2*i+1)*cols:(2*i+2)*cols])
		}
	})
}

// halvesToInterleaved is the inverse of interleavedToHalves: it permutes the
// rows of a Hugging Face query or key projection into the interleaved-pairs
// layout, as llama.cpp's converter does.
func halvesToInterleaved(w []float32, heads, headDim, cols int) error {
	return permuteHeads(w, heads, headDim, cols, func(dst, src []float32) {
		half := headDim / 2
		for i := range half {
			copy(dst[(2*i)*cols:(2*i+1)*cols], src[i*cols:(i+1)*cols])
			copy(dst[(2*i+1)*cols:(2*i+2)*cols], src[(half+i)*cols:(half+i+1)*cols])
		}
	})
}

func permuteHeads(w []float32, heads, headDim, cols int, perm func(dst, src []float32)) error {
	if heads <= 0 || headDim <= 0 || headDim%2 != 0 || cols <= 0 {
		return fmt.Errorf("RoPE permutation: %d heads of dim %d with %d columns: want positive counts and an even head dim", heads, headDim, cols)
	}
	if len(w) != heads*headDim*cols {
		return fmt.Errorf("RoPE permutation: %d values, want %d heads × %d × %d columns", len(w), heads, headDim, cols)
	}
	n := headDim * cols
	src := make([]float32, n)
	for h := range heads {
		head := w[h*n : (h+1)*n]
		copy(src, head)
		perm(head, src)
	}
	return nil
}
