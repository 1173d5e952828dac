package graph

import (
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/golora/golora/internal/kernels"
)

// TestRopeMatchesHuggingFace compares the operator with the float64
// rotate_half formula of graphRefRoPE at every position of two sequences.
func TestRopeMatchesHuggingFace(t *testing.T) {
	const seqLen, heads, headDim, theta = 9, 3, 10, 500000.0
	table, err := newRopeTable(seqLen, headDim, theta, kernels.RopeInvFreq(headDim, theta), 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := graphRandomMatrix(rng, 2*seqLen, heads*headDim, 1)
	out, err := (&ropeOp{table: table, heads: heads}).Do(x)
	if err != nil {
		t.Fatal(err)
	}
	got := out.Data().([]float32)
	width := heads * headDim
	for r := range 2 * seqLen {
		want := graphRefRoPE(graphF64(x.Float32s()[r*width:(r+1)*width]), r%seqLen, headDim, theta)
		for i, v := range want {
			if d := math.Abs(v - float64(got[r*width+i])); d > 1e-5 {
				t.Fatalf("row %d element %d: %v, want %v", r, i, got[r*width+i], v)
			}
		}
	}
}

func TestRopeInverseUndoesRotation(t *testing.T) {
	table, err := newRopeTable(16, 8, 10000, kernels.RopeInvFreq(8, 10000), 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	x := graphRandomMatrix(rng, 32, 16, 1).Float32s()
	y := make([]float32, len(x))
	table.rotate(y, x, 2, false)
	table.rotate(y, y, 2, true)
	for i := range x {
		if math.Abs(float64(x[i]-y[i])) > 1e-5 {
			t.Fatalf("element %d: %v after rotating there and back, want %v", i, y[i], x[i])
		}
	}
}

func TestRopeGradient(t *testing.T) {
	table, err := newRopeTable(4, 6, 10000, kernels.RopeInvFreq(6, 10000), 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	graphCheckOpGradient(t, []*tensor.Dense{graphRandomMatrix(rng, 8, 12, 1)},
		func(g *gorgonia.ExprGraph, xs gorgonia.Nodes) (*gorgonia.Node, error) {
			return applyRoPE(xs[0], table, 2, nil)
		}, 1e-2, 1e-4)
}

func TestRopeRejectsBadParameters(t *testing.T) {
	for _, tc := range []struct {
		headDim int
		theta   float64
	}{{7, 10000}, {0, 10000}, {8, 0}, {8, -1}} {
		if _, err := newRopeTable(4, tc.headDim, tc.theta, kernels.RopeInvFreq(tc.headDim, tc.theta), 1); err == nil {
			t.Errorf("head dim %d, theta %g accepted", tc.headDim, tc.theta)
		}
	}
}
