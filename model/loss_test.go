package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestLossExpShiftedAccuracy(t *testing.T) {
	const n = 1_000_001
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(-87 * float64(i) / (n - 1))
	}
	// A shift m ≠ 0: e^(x − m) with m = 0.5 and x ≤ 0.5.
	const m = 0.5
	for i := range x {
		x[i] += m
	}
	got := make([]float32, n)
	sum := expShifted(got, x, m)
	var worst, want float64
	for i, v := range x {
		e := math.Exp(float64(v - m))
		want += e
		r := math.Abs(float64(got[i])-e) / e
		worst = math.Max(worst, r)
		if r > 2.5e-7 {
			t.Fatalf("e^(%v − %v) = %v, want %v (relative error %.2g)", v, m, got[i], e, r)
		}
	}
	t.Logf("worst relative error %.2g (float32 ulp is at most 1.2e-7 relative)", worst)
	if math.Abs(sum-want) > 1e-6*want {
		t.Errorf("sum %v, want %v", sum, want)
	}
	edge := []float32{0, -100, -87.5}
	expShifted(edge, edge, 0)
	if edge[0] != 1 || edge[1] > 2e-38 || edge[2] > 2e-38 {
		t.Errorf("e^0, e^-100, e^-87.5 = %v, want 1 and two values below 2e-38", edge)
	}
}

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
