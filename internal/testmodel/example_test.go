package testmodel_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/golora/golora/internal/testmodel"
	"github.com/golora/golora/model"
)

func ExampleSynthetic() {
	c := model.Config{Dim: 8, HiddenDim: 16, Layers: 1, Heads: 2, KVHeads: 2, HeadDim: 4,
		VocabSize: 10, MaxSeqLen: 8, NormEps: 1e-5, RopeTheta: 10000}
	a := testmodel.Synthetic(c, rand.New(rand.NewPCG(1, 2)), nil)
	b := testmodel.Synthetic(c, rand.New(rand.NewPCG(1, 2)), nil)
	fmt.Println(a.Validate() == nil, testmodel.SameBits(a.Layers[0].Q.Dense, b.Layers[0].Q.Dense))
	// Output: true true
}
