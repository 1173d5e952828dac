package graph

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func graphTargetsTensor(targets []int) *tensor.Dense {
	return tensor.New(tensor.WithShape(1, len(targets)), tensor.WithBacking(append([]int(nil), targets...)))
}

func TestLossGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	targets := []int{3, IgnoreTarget, 0, 10, 5, IgnoreTarget}
	graphCheckOpGradient(t, []*tensor.Dense{graphRandomMatrix(rng, len(targets), 11, 3)},
		func(g *gorgonia.ExprGraph, xs gorgonia.Nodes) (*gorgonia.Node, error) {
			tn := gorgonia.NewMatrix(g, tensor.Int, gorgonia.WithShape(1, len(targets)), gorgonia.WithName("targets"),
				gorgonia.WithValue(graphTargetsTensor(targets)))
			return crossEntropy(xs[0], tn, 11, nil)
		}, 1e-2, 2e-3)
}

// TestLossStableForLargeLogits: logits of 1e4 overflow a naive exp; the
// loss must still be the exact log-softmax value.
func TestLossStableForLargeLogits(t *testing.T) {
	logits := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{10000, 9999, 9990, -10000, 0, 10000}))
	got, err := crossEntropyOp{vocab: 3}.Do(logits, graphTargetsTensor([]int{1, 0}))
	if err != nil {
		t.Fatal(err)
	}
	l0 := math.Log(1+math.Exp(-1)+math.Exp(-10)) + 1
	l1 := math.Log(1+math.Exp(-10000)+math.Exp(-20000)) + 20000
	want := (l0 + l1) / 2
	v, err := opScalar(got, crossEntropyOp{}, "loss")
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(v)-want) > 1e-6*want {
		t.Errorf("loss %v, want %v", v, want)
	}
}

func TestLossRejectsBadTargets(t *testing.T) {
	logits := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking(make([]float32, 6)))
	for _, targets := range [][]int{{0, 3}, {-2, 0}, {0}} {
		if _, err := (crossEntropyOp{vocab: 3}).Do(logits, graphTargetsTensor(targets)); err == nil {
			t.Errorf("targets %v accepted", targets)
		} else {
			t.Log(err)
		}
	}
}
