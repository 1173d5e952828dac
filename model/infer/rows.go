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

// mulRows computes columns [start, end) of y = x·Wᵀ for the n rows of x
// (y [n, lin.Out], x [n, lin.In]); lin is dense or a rangeMulT (canSplit).
func mulRows(lin *model.Linear, y, x []float32, n, start, end int) error {
	in, out := lin.In, lin.Out
	if lin.Dense == nil {
		return lin.Quantized.(rangeMulT).MulTRows(y[:n*out], x[:n*in], n, start, end)
	}
	for i := range n {
		kernels.DenseMulT(y[i*out+start:i*out+end], x[i*in:(i+1)*in], lin.Dense[start*in:end*in], 1, in, end-start)
	}
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
