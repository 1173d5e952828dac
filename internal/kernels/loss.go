package kernels

import "math"

// CrossEntropy returns the cross-entropy term logsumexp(row) − row[target]
// of one row of logits, computed from the row's maximum so that no
// exponential overflows; scratch holds len(row) values.
func CrossEntropy(scratch, row []float32, target int) float64 {
	m := rowMax(row)
	return float64(m) + math.Log(expShifted(scratch, row, m)) - float64(row[target])
}

// CrossEntropyBackward writes into dst the gradient of scale times the
// CrossEntropy of row: scale · (softmax(row) − onehot(target)).
func CrossEntropyBackward(dst, row []float32, target int, scale float64) {
	// One exponential per logit: store e^(x−max), then scale by scale / Σ.
	sum := expShifted(dst, row, rowMax(row))
	scaleFloats(dst, float32(scale/sum))
	dst[target] -= float32(scale)
}

// CrossEntropyWithGrad returns CrossEntropy of row and overwrites row with
// what CrossEntropyBackward would write for it, with one pass of
// exponentials instead of two and no scratch.
func CrossEntropyWithGrad(row []float32, target int, scale float64) float64 {
	m := rowMax(row)
	xt := row[target]
	sum := expShifted(row, row, m)
	scaleFloats(row, float32(scale/sum))
	row[target] -= float32(scale)
	return float64(m) + math.Log(sum) - float64(xt)
}
