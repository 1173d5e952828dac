package graph

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/model"
)

// headLossTestCase is a small dense head with a bias, hidden states and
// targets with ignored positions.
func headLossTestCase(rng *rand.Rand, n, dim, vocab int) (*model.Linear, *tensor.Dense, []int) {
	head := &model.Linear{Name: "lm_head", Out: vocab, In: dim,
		Dense: graphRandomMatrix(rng, vocab, dim, 1/math.Sqrt(float64(dim))).Float32s(),
		Bias:  graphRandomMatrix(rng, 1, vocab, 0.1).Float32s()}
	targets := make([]int, n)
	for i := range targets {
		targets[i] = rng.IntN(vocab)
		if i%4 == 1 {
			targets[i] = IgnoreTarget
		}
	}
	return head, graphRandomMatrix(rng, n, dim, 1), targets
}

// headLossRun returns the loss and its gradient with respect to the hidden
// states: fused with chunk logits at a time (chunk > 0), or through the
// logits with the frozen linear and cross-entropy operators (chunk 0).
func headLossRun(t *testing.T, head *model.Linear, hidden *tensor.Dense, targets []int, chunk int) (float32, []float32) {
	t.Helper()
	g := gorgonia.NewGraph()
	x := gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(hidden.Shape()...), gorgonia.WithName("hidden"),
		gorgonia.WithValue(hidden.Clone().(*tensor.Dense)))
	tn := gorgonia.NewMatrix(g, tensor.Int, gorgonia.WithShape(1, len(targets)), gorgonia.WithName("targets"),
		gorgonia.WithValue(graphTargetsTensor(targets)))
	var loss *gorgonia.Node
	var err error
	if chunk > 0 {
		loss, err = gorgonia.ApplyOp(&headLossOp{head: head, chunk: chunk, grad: new([]float32)}, x, tn)
	} else {
		var logits *gorgonia.Node
		if logits, err = frozenLinear(head, x, nil); err == nil {
			loss, err = crossEntropy(logits, tn, head.Out, nil)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	grads, err := gorgonia.Grad(loss, x)
	if err != nil {
		t.Fatal(err)
	}
	m := gorgonia.NewTapeMachine(g)
	defer m.Close()
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	v, err := opScalar(loss.Value(), crossEntropyOp{}, "loss")
	if err != nil {
		t.Fatal(err)
	}
	return v, append([]float32(nil), grads[0].Value().Data().([]float32)...)
}

// TestHeadLossMatchesUnfused compares the fused head and loss, in chunks of
// one row, three rows (the last chunk short) and all rows, with the
// unfused frozen linear and cross-entropy: the same sums in other orders,
// so they agree to float32 rounding.
func TestHeadLossMatchesUnfused(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n, dim, vocab = 13, 8, 50
	head, hidden, targets := headLossTestCase(rng, n, dim, vocab)
	wantLoss, wantGrad := headLossRun(t, head, hidden, targets, 0)
	for _, rows := range []int{1, 3, n} {
		t.Run(fmt.Sprintf("rows=%d", rows), func(t *testing.T) {
			loss, grad := headLossRun(t, head, hidden, targets, rows*vocab)
			if d := math.Abs(float64(loss - wantLoss)); d > 1e-6*float64(wantLoss) {
				t.Errorf("loss %v, unfused %v", loss, wantLoss)
			}
			worst, scale := largestDifference(grad, wantGrad)
			t.Logf("loss %v (unfused %v); largest gradient difference %.3g of %.3g", loss, wantLoss, worst, scale)
			if worst > 1e-6*scale {
				t.Errorf("gradient differs from the unfused one by %.3g (largest component %.3g)", worst, scale)
			}
			for r, tgt := range targets {
				if tgt != IgnoreTarget {
					continue
				}
				for _, v := range grad[r*dim : (r+1)*dim] {
					if v != 0 {
						t.Fatalf("row %d has an ignored target but a gradient of %v", r, v)
					}
				}
			}
		})
	}
}

// TestHeadLossGradient checks the fused operator against central
// differences, in chunks of two rows.
func TestHeadLossGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	head, hidden, targets := headLossTestCase(rng, 7, 6, 11)
	graphCheckOpGradient(t, []*tensor.Dense{hidden},
		func(g *gorgonia.ExprGraph, xs gorgonia.Nodes) (*gorgonia.Node, error) {
			tn := gorgonia.NewMatrix(g, tensor.Int, gorgonia.WithShape(1, len(targets)), gorgonia.WithName("targets"),
				gorgonia.WithValue(graphTargetsTensor(targets)))
			return gorgonia.ApplyOp(&headLossOp{head: head, chunk: 2 * head.Out, grad: new([]float32)}, xs[0], tn)
		}, 1e-2, 2e-3)
}

// TestHeadLossAllIgnored: no counted target gives a zero loss and gradient.
func TestHeadLossAllIgnored(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	head, hidden, targets := headLossTestCase(rng, 5, 4, 9)
	for i := range targets {
		targets[i] = IgnoreTarget
	}
	loss, grad := headLossRun(t, head, hidden, targets, headLossChunk)
	if loss != 0 {
		t.Errorf("loss %v, want 0", loss)
	}
	for i, v := range grad {
		if v != 0 {
			t.Fatalf("gradient[%d] = %v, want 0", i, v)
		}
	}
}

// headZeroAdapter adds a zero term to the output head alone, which makes
// the Graph train through its logits, as it does for an adapted head.
type headZeroAdapter struct{ head string }

func (a headZeroAdapter) Delta(g *gorgonia.ExprGraph, lin *model.Linear, x *gorgonia.Node) (*gorgonia.Node, error) {
	if lin.Name != a.head {
		return nil, nil
	}
	zero := tensor.New(tensor.WithShape(x.Shape()[0], lin.Out), tensor.Of(tensor.Float32))
	return gorgonia.NewMatrix(g, tensor.Float32, gorgonia.WithShape(x.Shape()[0], lin.Out),
		gorgonia.WithName("zero_head_delta"), gorgonia.WithValue(zero)), nil
}

// TestGraphFusedLossMatchesLogits trains a whole graph with the fused head
// loss and with the loss through its logits (forced by a zero adapter term
// on the head), and compares the losses and input gradients.
func TestGraphFusedLossMatchesLogits(t *testing.T) {
	w := graphSynthetic(graphGQAConfig, 4, func(v float32) float32 { return v })
	rng := rand.New(rand.NewPCG(17, 18))
	const batch, seqLen = 2, 12
	tokens := graphRandomTokens(rng, batch*seqLen, graphGQAConfig.VocabSize)
	targets := graphTargets(tokens, seqLen)
	targets[3] = IgnoreTarget
	run := func(adapter Adapter) (float32, []float32) {
		gr, err := New(w, Options{Batch: batch, SeqLen: seqLen, Adapter: adapter})
		if err != nil {
			t.Fatal(err)
		}
		defer gr.Close()
		if _, fused := gr.Loss.Op().(*headLossOp); fused != (adapter == nil) {
			t.Fatalf("adapter %v: loss operator %v", adapter, gr.Loss.Op())
		}
		if _, err := gr.Differentiate(gr.Input); err != nil {
			t.Fatal(err)
		}
		if err := gr.SetBatch(tokens, targets); err != nil {
			t.Fatal(err)
		}
		loss, err := gr.ForwardBackward(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		g, err := gr.Input.Grad()
		if err != nil {
			t.Fatal(err)
		}
		return loss, append([]float32(nil), g.Data().([]float32)...)
	}
	fusedLoss, fused := run(nil)
	wantLoss, want := run(headZeroAdapter{head: w.Output.Name})
	if d := math.Abs(float64(fusedLoss - wantLoss)); d > 1e-6*float64(wantLoss) {
		t.Errorf("fused loss %v, through the logits %v", fusedLoss, wantLoss)
	}
	worst, scale := largestDifference(fused, want)
	t.Logf("loss %v (through the logits %v); largest input-gradient difference %.3g of %.3g", fusedLoss, wantLoss, worst, scale)
	if worst > 1e-5*scale {
		t.Errorf("input gradients differ by %.3g (largest component %.3g)", worst, scale)
	}
}

// largestDifference returns the largest |got[i] − want[i]| and the largest
// |want[i]|, the scale it is judged against.
func largestDifference(got, want []float32) (worst, scale float64) {
	for i := range got {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
		scale = math.Max(scale, math.Abs(float64(want[i])))
	}
	return worst, scale
}
