package infer

import (
	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/model"
)

// rangeMulT is a quantized format that computes the part of its product
// given by a range of weight rows on the calling goroutine without
// allocating (nf4.Matrix.MulTRows), so that a decode step can split it.
type rangeMulT interface {
	MulTRows(y, x []float32, n, start, end int) error
}

// mulRows computes entries [start, end) of y = x·Wᵀ for a single row x.
func mulRows(lin *model.Linear, y, x []float32, start, end int) error {
	if lin.Dense == nil {
		return lin.Quantized.(rangeMulT).MulTRows(y, x, 1, start, end)
	}
	in := lin.In
	kernels.DenseMulT(y[start:end], x, lin.Dense[start*in:end*in], 1, in, end-start)
	return nil
}

// canSplit reports whether lin's single-row product can be split by rows:
// dense weights and formats with MulTRows.
func canSplit(lin *model.Linear) bool {
	if lin.Dense != nil {
		return true
	}
	_, ok := lin.Quantized.(rangeMulT)
	return ok
}
