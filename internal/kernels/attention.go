package kernels

import (
	"math"

	"github.com/golora/golora/internal/cpu"

	"github.com/golora/golora/internal/blas"
)

// Attention describes causal attention of one query head over one sequence of
// SeqLen positions, its rows read with the strides of the full matrices that
// hold every head side by side: QStride for queries (and their output and
// gradient), KVStride for keys and values. With Window > 0, position i
// attends to the last Window positions up to i only (Mistral's sliding
// window).
type Attention struct {
	SeqLen, HeadDim   int
	QStride, KVStride int
	Window            int
}

// first returns the first position row i attends to.
func (a Attention) first(i int) int {
	if a.Window > 0 {
		return max(0, i+1-a.Window)
	}
	return 0
}

// attentionScale is the factor of the query-key products, 1/sqrt(headDim).
func attentionScale(headDim int) float32 { return float32(1 / math.Sqrt(float64(headDim))) }

// Probs fills p ([SeqLen, SeqLen]) with the causal attention weights
// softmax(q·kᵀ/sqrt(HeadDim)) of the head whose first query and key
// elements are q[0] and k[0]; entries above the diagonal (and before the
// window) are zero.
func (a Attention) Probs(p, q, k []float32) {
	T := a.SeqLen
	blas.Sgemm(false, true, T, T, a.HeadDim, attentionScale(a.HeadDim), q, a.QStride, k, a.KVStride, 0, p, T)
	for i := range T {
		row := p[i*T : (i+1)*T]
		lo := a.first(i)
		clear(row[:lo])
		softmax(row[lo : i+1])
		clear(row[i+1:])
	}
}

// Forward writes the attention output of one head, P·v, into out (stride
// QStride), computing the weights P into p ([SeqLen, SeqLen]).
func (a Attention) Forward(out, p, q, k, v []float32) {
	T := a.SeqLen
	a.Probs(p, q, k)
	blas.Sgemm(false, false, T, a.HeadDim, T, 1, p, T, v, a.KVStride, 0, out, a.QStride)
}

// Backward computes the gradients of one head from its output gradient dOut
// (stride QStride): dq is overwritten, dk and dv are overwritten or, with
// accumulate, added to (query heads sharing a key/value head add up); all
// three have stride gradStride. p and dp are [SeqLen, SeqLen] work space.
// The weights are recomputed rather than kept from the forward pass. With P
// the weights, dP = dOut·vᵀ, dS = P ⊙ (dP − rowsum(P ⊙ dP)), and
// dq = scale·dS·k, dk += scale·dSᵀ·q, dv += Pᵀ·dOut.
func (a Attention) Backward(dq, dk, dv []float32, gradStride int, accumulate bool, p, dp, q, k, v, dOut []float32) {
	T, hd := a.SeqLen, a.HeadDim
	scale := attentionScale(hd)
	a.Probs(p, q, k)
	blas.Sgemm(false, true, T, T, hd, 1, dOut, a.QStride, v, a.KVStride, 0, dp, T)
	for i := range T {
		pr, dr := p[i*T:(i+1)*T], dp[i*T:(i+1)*T]
		lo := a.first(i)
		var dot float64
		for j := lo; j <= i; j++ {
			dot += float64(pr[j]) * float64(dr[j])
		}
		d32 := float32(dot)
		for j := lo; j <= i; j++ {
			dr[j] = pr[j] * (dr[j] - d32)
		}
		clear(dr[:lo])
		clear(dr[i+1:])
	}
	var beta float32
	if accumulate {
		beta = 1
	}
	blas.Sgemm(false, false, T, hd, T, scale, dp, T, k, a.KVStride, 0, dq, gradStride)
	blas.Sgemm(true, false, T, hd, T, scale, dp, T, q, a.QStride, beta, dk, gradStride)
	blas.Sgemm(true, false, T, hd, T, 1, p, T, dOut, a.QStride, beta, dv, gradStride)
}

// AttendCached is the decode form of causal attention: it writes into out
// (len(q)) the attention of one query head q over the first len(scores)
// cached positions, position t's key and value head starting at
// keys[t·stride] and values[t·stride]. scores is work space.
//
// With a head dimension that is a multiple of 16 (most models) it runs
// vector kernels, whose results do not depend on the CPU.
func AttendCached(out, scores, q, keys, values []float32, stride int) {
	hd := len(q)
	l := cpu.Best()
	attendScores(l, scores, q, keys, stride, attentionScale(hd))
	softmax(scores)
	attendValues(l, out[:hd], scores, values, stride)
}
