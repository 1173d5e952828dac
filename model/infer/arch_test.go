package infer

import (
	"context"
	"math"
	"testing"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/internal/archtest"
	"github.com/golora/golora/nf4"
)

// archStepLogits runs the tokens one Step at a time, then again as one
// batched Prefill of the first half followed by Steps, and returns the
// logits of every position from both runs.
func archStepLogits(t *testing.T, w *model.Weights, tokens []int) (stepped, prefilled [][]float32) {
	t.Helper()
	for _, batch := range []int{1, 4} {
		g, err := NewGenerator(w, GeneratorOptions{PrefillBatch: batch})
		if err != nil {
			t.Fatal(err)
		}
		var rows [][]float32
		half := len(tokens) / 2
		if batch > 1 {
			logits, err := g.Prefill(tokens[:half])
			if err != nil {
				t.Fatal(err)
			}
			rows = make([][]float32, half-1, len(tokens))
			rows = append(rows, append([]float32(nil), logits...))
		}
		for _, tok := range tokens[len(rows):] {
			logits, err := g.Step(tok)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, append([]float32(nil), logits...))
		}
		if batch == 1 {
			stepped = rows
		} else {
			prefilled = rows
		}
	}
	return stepped, prefilled
}

// archWorst is the largest |got − want| over the rows got holds.
func archWorst(got [][]float32, want [][]float64) float64 {
	var worst float64
	for i, row := range got {
		for j, v := range row {
			worst = math.Max(worst, math.Abs(float64(v)-want[i][j]))
		}
	}
	return worst
}

// TestGeneratorArchitecturesMatchReference: the float32 generator of each
// family, token by token and with a batched prefill, gives the reference's
// logits within 1e-4.
func TestGeneratorArchitecturesMatchReference(t *testing.T) {
	for _, name := range archtest.Families {
		t.Run(name, func(t *testing.T) {
			w, g := archtest.Load(t, name)
			stepped, prefilled := archStepLogits(t, w, g.Tokens)
			s, p := archWorst(stepped, g.Logits), archWorst(prefilled, g.Logits)
			t.Logf("%s: max |logit − reference|: steps %.2g, prefill+steps %.2g", name, s, p)
			if s > 1e-4 || p > 1e-4 {
				t.Errorf("logits differ from the reference by up to %g (steps) and %g (prefill), want ≤ 1e-4", s, p)
			}
		})
	}
}

// archLoss is the mean next-token cross-entropy of rows of logits.
func archLoss[F float32 | float64](rows [][]F, tokens []int) float64 {
	var sum float64
	for i := range len(tokens) - 1 {
		m := math.Inf(-1)
		for _, v := range rows[i] {
			m = math.Max(m, float64(v))
		}
		var z float64
		for _, v := range rows[i] {
			z += math.Exp(float64(v) - m)
		}
		sum += m + math.Log(z) - float64(rows[i][tokens[i+1]])
	}
	return sum / float64(len(tokens)-1)
}

// TestGeneratorArchitecturesNF4: with NF4 block linears (QLoRA's setting)
// the generator's loss on the golden tokens stays within the 5% that the
// graph's NF4 tests allow of the float32 reference's, and differs from it.
func TestGeneratorArchitecturesNF4(t *testing.T) {
	for _, name := range archtest.Families {
		t.Run(name, func(t *testing.T) {
			w, g := archtest.Load(t, name)
			if err := w.Quantize(context.Background(), nf4.Quantizer(nf4.Options{})); err != nil {
				t.Fatal(err)
			}
			stepped, _ := archStepLogits(t, w, g.Tokens)
			loss, ref := archLoss(stepped, g.Tokens), archLoss(g.Logits, g.Tokens)
			t.Logf("%s: NF4 loss %.5f, float32 reference %.5f (%+.2f%%); max |logit − reference| %.3g",
				name, loss, ref, 100*(loss/ref-1), archWorst(stepped, g.Logits))
			if math.Abs(loss/ref-1) >= 0.05 || loss == ref {
				t.Errorf("NF4 loss %v vs float32 reference %v: want a difference under 5%%, not zero", loss, ref)
			}
		})
	}
}

// TestGeneratorSlidingWindow: a sliding window does not limit the KV cache;
// positions beyond it are attended as Mistral does (the reference logits of
// mistral_window check the values).
func TestGeneratorSlidingWindow(t *testing.T) {
	w, _ := archtest.Load(t, "mistral_window")
	g, err := NewGenerator(w, GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g.MaxLen() != w.Config.MaxSeqLen {
		t.Fatalf("MaxLen %d, want the model's %d positions", g.MaxLen(), w.Config.MaxSeqLen)
	}
	if _, err := g.Prefill(make([]int, 3*w.Config.SlidingWindow)); err != nil {
		t.Fatal(err)
	}
}
