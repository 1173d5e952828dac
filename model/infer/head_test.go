package infer

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/model"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
	"github.com/golora/golora/quant/ggml"
)

// logitError decodes the same tokens exactly and with opts and returns the
// largest logit difference relative to the spread (max − min) of the exact
// logits at that step, the number of steps whose greedy choice differs, and
// how many of those were near ties: the exact logit of the other choice
// within 0.1% of the spread of the exact best.
func logitError(t *testing.T, w *model.Weights, opts GeneratorOptions, steps int) (worst float64, flips, ties int) {
	t.Helper()
	exact, err := NewGenerator(w, GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	int8, err := NewGenerator(w, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok := 1
	for s := range steps {
		le, err := exact.Step(tok)
		if err != nil {
			t.Fatal(err)
		}
		lq, err := int8.Step(tok)
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := le[0], le[0]
		var maxDiff float64
		for i := range le {
			lo, hi = min(lo, le[i]), max(hi, le[i])
			maxDiff = max(maxDiff, math.Abs(float64(lq[i]-le[i])))
		}
		worst = max(worst, maxDiff/float64(hi-lo))
		ae, aq := argmax(le), argmax(lq)
		if ae != aq {
			flips++
			if le[ae]-le[aq] < 0.001*(hi-lo) {
				ties++
			}
		}
		// Both generators follow the exact greedy choice, so that they see
		// the same tokens.
		tok = ae
		if s == 0 {
			tok = 400 % w.Config.VocabSize
		}
	}
	return worst, flips, ties
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// TestHeadInt8LogitError measures what HeadInt8 (documented at its
// declaration) costs in accuracy: on the trained stories260K and on a
// random stories15M-shaped model with an NF4 body, the largest logit error
// stays under 1% of the logits' spread and greedy decoding picks the same
// tokens.
func TestHeadInt8LogitError(t *testing.T) {
	stories, _ := loadStories(t)
	cases := []struct {
		name string
		w    *model.Weights
	}{{"stories260K", stories}}
	if !testing.Short() {
		w := model.RandomWeights(stories15MConfig, 15)
		if err := w.Quantize(context.Background(), nf4.Quantizer(nf4.Options{})); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct {
			name string
			w    *model.Weights
		}{"stories15M-shaped nf4", w})
	}
	for _, c := range cases {
		worst, flips, _ := logitError(t, c.w, GeneratorOptions{Head: HeadInt8}, 40)
		t.Logf("%s: largest logit error %.3g of the spread, %d of 40 greedy choices differ", c.name, worst, flips)
		if worst > 0.01 {
			t.Errorf("%s: largest logit error %.3g of the logits' spread, want < 1%%", c.name, worst)
		}
		if flips != 0 {
			t.Errorf("%s: %d of 40 greedy choices differ from the exact head's", c.name, flips)
		}
	}
}

// TestHeadInt8QuantizedHead: HeadInt8 of a quantized head (a GGUF's Q8_0
// head, an NF4 one) is made from its dequantized values: the logits are
// those of HeadInt8 of the same values held in float32.
func TestHeadInt8QuantizedHead(t *testing.T) {
	w, _ := loadStories(t)
	out := w.Output
	for _, format := range []string{"q8_0", "nf4"} {
		var m quant.Matrix
		var err error
		if format == "q8_0" {
			m, err = ggml.Quantize(ggml.Q8_0, out.Dense, out.Out, out.In)
		} else {
			m, err = nf4.Quantize(out.Dense, out.Out, out.In, nf4.Options{})
		}
		if err != nil {
			t.Fatal(err)
		}
		deq := make([]float32, out.Out*out.In)
		if err := m.DequantizeRows(deq, 0, out.Out); err != nil {
			t.Fatal(err)
		}
		quantized, dense := *w, *w
		quantized.Config.TiedOutput, dense.Config.TiedOutput = false, false
		quantized.Output = &model.Linear{Name: out.Name, Out: out.Out, In: out.In, Quantized: m}
		dense.Output = &model.Linear{Name: out.Name, Out: out.Out, In: out.In, Dense: deq}
		gq, err := NewGenerator(&quantized, GeneratorOptions{Head: HeadInt8})
		if err != nil {
			t.Fatalf("%s head: %v", format, err)
		}
		gd, err := NewGenerator(&dense, GeneratorOptions{Head: HeadInt8})
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range storiesPromptIDs {
			lq, err := gq.Step(tok)
			if err != nil {
				t.Fatal(err)
			}
			ld, err := gd.Step(tok)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(lq, ld) {
				t.Fatalf("%s head: HeadInt8 logits differ from those of its dequantized float32 head", format)
			}
		}
	}
}

func TestHeadInt8Errors(t *testing.T) {
	w := model.RandomWeights(splitConfig, 3)
	if err := w.Quantize(context.Background(), nf4.Quantizer(nf4.Options{})); err != nil {
		t.Fatal(err)
	}
	if _, err := NewGenerator(w, GeneratorOptions{Head: HeadPrecision(7)}); err == nil {
		t.Error("head precision 7: no error")
	}
	odd := model.RandomWeights(model.Config{
		Dim: 48, HiddenDim: 64, Layers: 1, Heads: 2, KVHeads: 2, HeadDim: 24, VocabSize: 50,
		MaxSeqLen: 8, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true,
	}, 4)
	if _, err := NewGenerator(odd, GeneratorOptions{Head: HeadInt8}); err == nil || !strings.Contains(err.Error(), "multiple of 32") {
		t.Errorf("HeadInt8 with Dim 48: error %v, want one about multiples of 32", err)
	}
}

// TestParsePrecisions: the Parse functions invert String and name the
// choices for an unknown name.
func TestParsePrecisions(t *testing.T) {
	for _, p := range []HeadPrecision{HeadExact, HeadInt8} {
		if got, err := ParseHeadPrecision(p.String()); err != nil || got != p {
			t.Errorf("ParseHeadPrecision(%q) = %v, %v", p.String(), got, err)
		}
	}
	for _, p := range []ActivationPrecision{ActivationsExact, ActivationsInt8} {
		if got, err := ParseActivationPrecision(p.String()); err != nil || got != p {
			t.Errorf("ParseActivationPrecision(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := ParseHeadPrecision("int4"); err == nil || err.Error() != `"int4": want exact or int8` {
		t.Errorf("ParseHeadPrecision(int4): error %v", err)
	}
	if _, err := ParseActivationPrecision(""); err == nil || err.Error() != `"": want exact or int8` {
		t.Errorf("ParseActivationPrecision(\"\"): error %v", err)
	}
}
