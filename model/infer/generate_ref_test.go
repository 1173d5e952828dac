package infer

import (
	"math"
	"testing"

	"github.com/golora/golora/model"
	"github.com/golora/golora/quant"
)

// referenceForward runs tokens through w from position 0 without any cache,
// in float64 with plain loops, and returns the logits of every position. It
// follows the Hugging Face LLaMA definition written out from scratch:
// RMSNorm x/sqrt(mean(x²)+eps)·w, RoPE on rotate_half pairs (i, i+d/2) with
// angle pos·theta^(−2i/d), causal grouped-query attention, SwiGLU MLP, final
// norm and output head. Quantized linears are dequantized first.
func referenceForward(t testing.TB, w *model.Weights, tokens []int) [][]float64 {
	t.Helper()
	c := w.Config
	hd := c.HeadDim
	n := len(tokens)
	dense := func(lin *model.Linear) []float64 {
		v := lin.Dense
		if lin.Quantized != nil {
			v = make([]float32, lin.Out*lin.In)
			if err := lin.Quantized.DequantizeRows(v, 0, lin.Out); err != nil {
				t.Fatal(err)
			}
		}
		out := make([]float64, len(v))
		for i, f := range v {
			out[i] = float64(f)
		}
		return out
	}
	matmul := func(x [][]float64, lin *model.Linear) [][]float64 {
		wt := dense(lin)
		y := make([][]float64, len(x))
		for r, row := range x {
			y[r] = make([]float64, lin.Out)
			for o := range lin.Out {
				var s float64
				for k := range lin.In {
					s += row[k] * wt[o*lin.In+k]
				}
				y[r][o] = s
			}
		}
		return y
	}
	norm := func(x [][]float64, wt []float32) [][]float64 {
		y := make([][]float64, len(x))
		for r, row := range x {
			var ss float64
			for _, v := range row {
				ss += v * v
			}
			inv := 1 / math.Sqrt(ss/float64(len(row))+c.NormEps)
			y[r] = make([]float64, len(row))
			for j, v := range row {
				y[r][j] = v * inv * float64(wt[j])
			}
		}
		return y
	}
	rope := func(x [][]float64, heads int) {
		for pos, row := range x {
			for h := range heads {
				for i := range hd / 2 {
					angle := float64(pos) * math.Pow(c.RopeTheta, -2*float64(i)/float64(hd))
					a, b := row[h*hd+i], row[h*hd+i+hd/2]
					row[h*hd+i] = a*math.Cos(angle) - b*math.Sin(angle)
					row[h*hd+i+hd/2] = b*math.Cos(angle) + a*math.Sin(angle)
				}
			}
		}
	}

	x := make([][]float64, n)
	for i, tok := range tokens {
		x[i] = make([]float64, c.Dim)
		for j := range c.Dim {
			x[i][j] = float64(w.Embedding[tok*c.Dim+j])
		}
	}
	for _, layer := range w.Layers {
		xn := norm(x, layer.AttnNorm)
		q, k, v := matmul(xn, layer.Q), matmul(xn, layer.K), matmul(xn, layer.V)
		rope(q, c.Heads)
		rope(k, c.KVHeads)
		att := make([][]float64, n)
		for i := range n {
			att[i] = make([]float64, c.Heads*hd)
			for h := range c.Heads {
				kvh := h / (c.Heads / c.KVHeads)
				scores := make([]float64, i+1)
				m := math.Inf(-1)
				for j := range i + 1 {
					var s float64
					for e := range hd {
						s += q[i][h*hd+e] * k[j][kvh*hd+e]
					}
					scores[j] = s / math.Sqrt(float64(hd))
					m = max(m, scores[j])
				}
				var sum float64
				for j := range scores {
					scores[j] = math.Exp(scores[j] - m)
					sum += scores[j]
				}
				for j := range scores {
					for e := range hd {
						att[i][h*hd+e] += scores[j] / sum * v[j][kvh*hd+e]
					}
				}
			}
		}
		o := matmul(att, layer.O)
		for i := range n {
			for j := range c.Dim {
				x[i][j] += o[i][j]
			}
		}
		xn = norm(x, layer.MLPNorm)
		gate, up := matmul(xn, layer.Gate), matmul(xn, layer.Up)
		for i := range n {
			for j := range c.HiddenDim {
				g := gate[i][j]
				gate[i][j] = g / (1 + math.Exp(-g)) * up[i][j]
			}
		}
		down := matmul(gate, layer.Down)
		for i := range n {
			for j := range c.Dim {
				x[i][j] += down[i][j]
			}
		}
	}
	return matmul(norm(x, w.Norm), w.Output)
}

// maxAbsDiff returns max |a−b| over the logits.
func maxAbsDiff(a []float32, b []float64) float64 {
	var d float64
	for i, v := range a {
		d = max(d, math.Abs(float64(v)-b[i]))
	}
	return d
}

// denseAsQuantized is a quant.Matrix that holds its values unquantized, so
// that the Generator's quantized path can be checked exactly.
type denseAsQuantized struct {
	rows, cols int
	v          []float32
}

var _ quant.Matrix = (*denseAsQuantized)(nil)

func (m *denseAsQuantized) Dims() (int, int) { return m.rows, m.cols }
func (m *denseAsQuantized) DequantizeRows(dst []float32, start, end int) error {
	copy(dst, m.v[start*m.cols:end*m.cols])
	return nil
}
func (m *denseAsQuantized) MulT(y, x []float32, n int) error {
	naiveDenseMulT(y, x, m.v, n, m.cols, m.rows)
	return nil
}
func (m *denseAsQuantized) StorageBytes() int64   { return int64(4 * len(m.v)) }
func (m *denseAsQuantized) BitsPerParam() float64 { return 32 }
func (m *denseAsQuantized) Format() string        { return "dense-test" }

// allLinears returns every linear layer of w, output head last.
func allLinears(w *model.Weights) []*model.Linear {
	var lins []*model.Linear
	for l := range w.Layers {
		ly := &w.Layers[l]
		lins = append(lins, ly.Q, ly.K, ly.V, ly.O, ly.Gate, ly.Up, ly.Down)
	}
	return append(lins, w.Output)
}
