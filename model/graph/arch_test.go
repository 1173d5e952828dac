package graph

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/internal/archtest"
)

// archLogits runs the graph on tokens and returns its logits and loss.
func archLogits(t *testing.T, w *model.Weights, tokens []int) ([]float32, float32) {
	t.Helper()
	n := len(tokens) - 1
	gr, loss := graphRun(t, w, 1, n, tokens[:n], tokens[1:])
	defer gr.Close()
	return append([]float32(nil), gr.Logits.Value().Data().([]float32)...), loss
}

// archRefLoss is the mean next-token cross-entropy of the golden logits.
func archRefLoss(g archtest.Golden) float64 {
	n := len(g.Tokens) - 1
	var sum float64
	for i := range n {
		row := g.Logits[i]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, v)
		}
		var z float64
		for _, v := range row {
			z += math.Exp(v - m)
		}
		sum += m + math.Log(z) - row[g.Tokens[i+1]]
	}
	return sum / float64(n)
}

// TestGraphArchitecturesMatchReference: the float32 graph of each family
// gives the reference's logits within 1e-4 and its loss within 1e-4.
func TestGraphArchitecturesMatchReference(t *testing.T) {
	for _, name := range archtest.Families {
		t.Run(name, func(t *testing.T) {
			w, g := archtest.Load(t, name)
			logits, loss := archLogits(t, w, g.Tokens)
			v := w.Config.VocabSize
			var worst float64
			for i := range len(g.Tokens) - 1 {
				for j, want := range g.Logits[i] {
					worst = math.Max(worst, math.Abs(float64(logits[i*v+j])-want))
				}
			}
			ref := archRefLoss(g)
			t.Logf("%s: max |logit − reference| %.2g; loss %.6f, reference %.6f", name, worst, loss, ref)
			if worst > 1e-4 {
				t.Errorf("logits differ from the reference by up to %g, want ≤ 1e-4", worst)
			}
			if d := math.Abs(float64(loss) - ref); d > 1e-4 {
				t.Errorf("loss %v, reference %v", loss, ref)
			}
		})
	}
}

// TestGraphArchitecturesNF4: with every block linear in NF4 (QLoRA's
// setting) the loss stays within the 5% of TestGraphNF4LossIncrease of the
// reference's float32 loss, and differs from it (the weights are really
// quantized).
func TestGraphArchitecturesNF4(t *testing.T) {
	for _, name := range archtest.Families {
		t.Run(name, func(t *testing.T) {
			w, g := archtest.Load(t, name)
			graphQuantizeBlocks(t, w)
			_, loss := archLogits(t, w, g.Tokens)
			ref := archRefLoss(g)
			rise := math.Abs(float64(loss)/ref - 1)
			t.Logf("%s: NF4 loss %.5f, float32 reference %.5f (%+.2f%%)", name, loss, ref, 100*(float64(loss)/ref-1))
			if rise >= 0.05 {
				t.Errorf("NF4 changes the loss by %.2f%%, want < 5%%", 100*rise)
			}
			if float64(loss) == ref {
				t.Error("NF4 loss equals the float32 reference exactly: were the weights quantized?")
			}
		})
	}
}

// TestGraphArchitecturesInputGradient checks the graph's gradient with
// respect to its input, through every new piece (biases, q/k norms, scaled
// and partial RoPE), against central differences of the loss.
func TestGraphArchitecturesInputGradient(t *testing.T) {
	for _, name := range archtest.Families {
		t.Run(name, func(t *testing.T) {
			w, g := archtest.Load(t, name)
			n := 6
			gr, err := New(w, Options{Batch: 1, SeqLen: n})
			if err != nil {
				t.Fatal(err)
			}
			defer gr.Close()
			if err := gr.SetBatch(g.Tokens[:n], g.Tokens[1:n+1]); err != nil {
				t.Fatal(err)
			}
			grads, err := gr.Differentiate(gr.Input)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := gr.ForwardBackward(context.Background()); err != nil {
				t.Fatal(err)
			}
			analytic := append([]float32(nil), grads[0].Value().Data().([]float32)...)
			x := gr.input.Float32s()
			rng := rand.New(rand.NewPCG(7, uint64(len(name))))
			const eps = 1e-2
			for range 12 {
				i := rng.IntN(len(x))
				old := x[i]
				x[i] = old + eps
				up, err := gr.Forward(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				x[i] = old - eps
				down, err := gr.Forward(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				x[i] = old
				numeric := float64(up-down) / (2 * eps)
				if d := math.Abs(numeric - float64(analytic[i])); d > 2e-3+0.05*math.Abs(numeric) {
					t.Errorf("input %d: gradient %v, central difference %v", i, analytic[i], numeric)
				}
			}
		})
	}
}

// TestHeadNormGradient checks the backward of the per-head RMSNorm (Qwen3's
// q_norm, k_norm) against central differences.
func TestHeadNormGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const heads, headDim = 3, 4
	weight := make([]float32, headDim)
	for i := range weight {
		weight[i] = 1 + 0.3*float32(rng.NormFloat64())
	}
	cfg := model.Config{HeadDim: headDim, NormEps: 1e-6}
	graphCheckOpGradient(t, []*tensor.Dense{graphRandomMatrix(rng, 5, heads*headDim, 1)},
		func(g *gorgonia.ExprGraph, xs gorgonia.Nodes) (*gorgonia.Node, error) {
			return applyHeadNorm(xs[0], weight, cfg, "q_norm", nil)
		}, 1e-2, 1e-3)
}
