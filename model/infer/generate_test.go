package infer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/tokenizer"
	"github.com/golora/golora/nf4"
)

// storiesGreedy is llama2.c's documented greedy (temperature 0) output of
// stories260K for the prompt "Once upon a time" (llama2.c README, quoted in
// the project's fixtures README). The model goes on after "too high.", so
// tests compare this prefix of prompt + generated text.
const storiesGreedy = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. " +
	"One day, she saw a big, red ball. She wanted to play with it, but it was too high."

const storiesPrompt = "Once upon a time"

func loadStories(t testing.TB) (*model.Weights, tokenizer.Tokenizer) {
	t.Helper()
	b, err := model.Load(context.Background(), "../stories260k/stories260K.bin", model.LoadOptions{TokenizerPath: "../stories260k/tok512.bin"})
	if err != nil {
		t.Fatal(err)
	}
	return b.Weights, b.Tokenizer
}

// storiesPromptIDs are the ids of storiesPrompt with BOS, as the fixtures
// README gives them (computed by llama2.c's encoder).
var storiesPromptIDs = []int{1, 403, 407, 261, 378}

// errEnough stops a generation once it has produced enough text.
var errEnough = errors.New("enough text")

// generateGreedyPrefix generates greedily from storiesPrompt until prompt +
// text is at least as long as storiesGreedy (the callback then stops it), so
// the comparison needs no guessed token count, and returns prompt + text.
func generateGreedyPrefix(t *testing.T, w *model.Weights, tok tokenizer.Tokenizer) string {
	t.Helper()
	var streamed strings.Builder
	streamed.WriteString(storiesPrompt)
	text, err := Generate(context.Background(), w, tok, storiesPrompt, GenerateOptions{
		MaxTokens: 200,
		OnToken: func(id int, text string) error {
			streamed.WriteString(text)
			if streamed.Len() >= len(storiesGreedy) {
				return errEnough
			}
			return nil
		},
	})
	if !errors.Is(err, errEnough) {
		t.Fatalf("generation ended with %v before reaching %d bytes: %q", err, len(storiesGreedy), storiesPrompt+text)
	}
	if got := storiesPrompt + text; got != streamed.String() {
		t.Fatalf("returned text %q differs from the streamed text %q", got, streamed.String())
	}
	return storiesPrompt + text
}

func TestGenerateStories260KGreedyMatchesLlama2C(t *testing.T) {
	check := func(t *testing.T, w *model.Weights, tok tokenizer.Tokenizer) {
		ids := append([]int{tok.BOS()}, tok.Encode(storiesPrompt)...)
		if fmt.Sprint(ids) != fmt.Sprint(storiesPromptIDs) {
			t.Fatalf("prompt ids %v, want %v", ids, storiesPromptIDs)
		}
		got := generateGreedyPrefix(t, w, tok)
		t.Logf("greedy: %q", got)
		if got[:len(storiesGreedy)] != storiesGreedy {
			t.Errorf("greedy output\n%q\nwant prefix\n%q", got, storiesGreedy)
		}
	}
	t.Run("bin", func(t *testing.T) {
		w, tok := loadStories(t)
		check(t, w, tok)
	})
	t.Run("gguf", func(t *testing.T) {
		b, err := model.Load(context.Background(), "../testdata/stories260K.gguf", model.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		check(t, b.Weights, b.Tokenizer)
	})
	t.Run("embedded", func(t *testing.T) {
		cp, err := model.Default()
		if err != nil {
			t.Fatal(err)
		}
		check(t, cp.Weights, cp.Tokenizer)
	})
}

// meanLogProb returns the mean log-probability that g's model gives to each
// of tokens after prompt (teacher forcing).
func meanLogProb(t *testing.T, g *Generator, prompt, tokens []int) float64 {
	t.Helper()
	g.Reset()
	logits, err := g.Prefill(prompt)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, id := range tokens {
		m := math.Inf(-1)
		for _, l := range logits {
			m = max(m, float64(l))
		}
		var z float64
		for _, l := range logits {
			z += math.Exp(float64(l) - m)
		}
		sum += float64(logits[id]) - m - math.Log(z)
		if logits, err = g.Step(id); err != nil {
			t.Fatal(err)
		}
	}
	return sum / float64(len(tokens))
}

// TestGenerateNF4Stories260K quantizes every block linear of stories260K to
// NF4 (QLoRA's setting: block 64, double quantization) and checks that greedy
// decoding still writes the story: the float32 model must find the NF4 text
// nearly as likely as its own greedy text.
func TestGenerateNF4Stories260K(t *testing.T) {
	w, tok := loadStories(t)
	wq, _ := loadStories(t)
	err := wq.Quantize(context.Background(), nf4.Quantizer(nf4.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 100
	gf, err := NewGenerator(w, GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gq, err := NewGenerator(wq, GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rf, err := gf.Generate(ctx, tok, storiesPromptIDs, GenerateOptions{MaxTokens: n})
	if err != nil {
		t.Fatal(err)
	}
	rq, err := gq.Generate(ctx, tok, storiesPromptIDs, GenerateOptions{MaxTokens: n})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("float32: %q", rf.Text)
	t.Logf("nf4:     %q", rq.Text)
	common := 0
	for common < min(len(rf.Tokens), len(rq.Tokens)) && rf.Tokens[common] == rq.Tokens[common] {
		common++
	}
	lpF := meanLogProb(t, gf, storiesPromptIDs, rf.Tokens)
	lpQ := meanLogProb(t, gf, storiesPromptIDs, rq.Tokens)
	// A control that is not fluent: the NF4 tokens in reverse order.
	rev := slices.Clone(rq.Tokens)
	slices.Reverse(rev)
	lpRev := meanLogProb(t, gf, storiesPromptIDs, rev)
	t.Logf("common prefix %d tokens; mean log-prob under the float32 model: float32 greedy %.3f, nf4 greedy %.3f, nf4 reversed %.3f",
		common, lpF, lpQ, lpRev)
	// Measured on this machine: common prefix 16 tokens, log-probs −0.453,
	// −0.516 and about −10; the bounds leave room for kernel rounding only.
	if len(rq.Tokens) < n/2 {
		t.Errorf("the NF4 model stopped after %d tokens", len(rq.Tokens))
	}
	if common < 10 {
		t.Errorf("the NF4 greedy text shares only %d tokens with the float32 one, want ≥ 10", common)
	}
	if lpQ < lpF-0.25 {
		t.Errorf("the float32 model gives the NF4 text a mean log-prob %.3f, more than 0.25 below its own %.3f", lpQ, lpF)
	}
	if lpRev > lpQ-1 {
		t.Errorf("control: reversed text scores %.3f, not clearly below the NF4 text's %.3f", lpRev, lpQ)
	}
}

// storyTokens is realistic input: BOS and the start of the documented story.
func storyTokens(tok tokenizer.Tokenizer) []int {
	return append([]int{tok.BOS()}, tok.Encode(storiesGreedy[:80])...)
}

func TestGeneratorMatchesFloat64Reference(t *testing.T) {
	w, tok := loadStories(t)
	tokens := storyTokens(tok)
	ref := referenceForward(t, w, tokens)
	g, err := NewGenerator(w, GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Prefill the first three tokens in one batch, then step one at a time:
	// both the batched and the single-row path are compared.
	logits, err := g.Prefill(tokens[:3])
	if err != nil {
		t.Fatal(err)
	}
	worst := maxAbsDiff(logits, ref[2])
	for i := 3; i < len(tokens); i++ {
		if logits, err = g.Step(tokens[i]); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, maxAbsDiff(logits, ref[i]))
	}
	t.Logf("max |float32 generator − float64 reference| over %d positions × %d logits: %.3g", len(tokens)-2, len(logits), worst)
	if worst > 1e-4 {
		t.Errorf("logits differ from the float64 reference by %g > 1e-4", worst)
	}
}

// TestGeneratorShapesMatchReference covers what stories260K does not:
// a head dim other than Dim/Heads, multi-query and plain multi-head
// attention, an untied head, quantized linears, and prompts longer than one
// prefill batch.
func TestGeneratorShapesMatchReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    model.Config
	}{
		{"gqa-headdim", model.Config{Dim: 24, HiddenDim: 40, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 10, VocabSize: 37, MaxSeqLen: 32, NormEps: 1e-6, RopeTheta: 500000}},
		{"mqa", model.Config{Dim: 16, HiddenDim: 24, Layers: 1, Heads: 4, KVHeads: 1, HeadDim: 4, VocabSize: 19, MaxSeqLen: 32, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true}},
		{"mha", model.Config{Dim: 12, HiddenDim: 20, Layers: 3, Heads: 3, KVHeads: 3, HeadDim: 4, VocabSize: 11, MaxSeqLen: 32, NormEps: 1e-5, RopeTheta: 10000}},
	} {
		for _, quantized := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/quantized=%v", tc.name, quantized), func(t *testing.T) {
				w := model.RandomWeights(tc.c, 7)
				if quantized {
					for _, lin := range allLinears(w) {
						if lin == w.Output && tc.c.TiedOutput {
							continue // Validate wants a tied head to alias the embedding
						}
						lin.Quantized = &denseAsQuantized{rows: lin.Out, cols: lin.In, v: lin.Dense}
						lin.Dense = nil
					}
				}
				rng := rand.New(rand.NewPCG(8, 9))
				tokens := make([]int, 23)
				for i := range tokens {
					tokens[i] = rng.IntN(tc.c.VocabSize)
				}
				ref := referenceForward(t, w, tokens)
				g, err := NewGenerator(w, GeneratorOptions{PrefillBatch: 4})
				if err != nil {
					t.Fatal(err)
				}
				// 17 tokens take five batches, the last one partial.
				logits, err := g.Prefill(tokens[:17])
				if err != nil {
					t.Fatal(err)
				}
				worst := maxAbsDiff(logits, ref[16])
				for i := 17; i < len(tokens); i++ {
					if logits, err = g.Step(tokens[i]); err != nil {
						t.Fatal(err)
					}
					worst = max(worst, maxAbsDiff(logits, ref[i]))
				}
				t.Logf("max |diff| %.3g", worst)
				if worst > 1e-4 {
					t.Errorf("logits differ from the float64 reference by %g > 1e-4", worst)
				}
			})
		}
	}
}

func TestKVCacheMatchesFullRecompute(t *testing.T) {
	w, tok := loadStories(t)
	tokens := storyTokens(tok)
	cached, err := NewGenerator(w, GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := NewGenerator(w, GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cached.Prefill(tokens[:1]); err != nil {
		t.Fatal(err)
	}
	var worst float64
	for i := 1; i < len(tokens); i++ {
		step, err := cached.Step(tokens[i])
		if err != nil {
			t.Fatal(err)
		}
		// Re-run the whole prefix without the cache: one batched pass.
		fresh.Reset()
		full, err := fresh.Prefill(tokens[:i+1])
		if err != nil {
			t.Fatal(err)
		}
		for j := range step {
			worst = max(worst, math.Abs(float64(step[j]-full[j])))
		}
	}
	t.Logf("max |cached step − full recompute| = %.3g", worst)
	// Both are float32 and differ only in the order of the sums of the
	// matrix products: none in the pure-Go build, whose batches run Sgemv
	// row by row (measured 0), Sgemv against Sgemm with OpenBLAS (measured
	// about 1e-5 on logits of magnitude up to about 20).
	if worst > 5e-5 {
		t.Errorf("cached decoding differs from recomputation by %g > 5e-5", worst)
	}
	if cached.Pos() != len(tokens) {
		t.Errorf("Pos() = %d, want %d", cached.Pos(), len(tokens))
	}
}

func TestKVCacheGrowth(t *testing.T) {
	c := model.Config{Dim: 8, HiddenDim: 12, Layers: 2, Heads: 2, KVHeads: 1, HeadDim: 4, VocabSize: 7, MaxSeqLen: 1300, NormEps: 1e-5, RopeTheta: 10000}
	w := model.RandomWeights(c, 3)
	tokens := make([]int, 1300)
	for i := range tokens {
		tokens[i] = i * 5 % c.VocabSize
	}
	// The growing cache starts at initialCacheLen (1024) positions and grows
	// to MaxSeqLen when a step crosses it; the other Generator gets all 1300
	// positions with its first batch.
	growing, err := NewGenerator(w, GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := growing.Prefill(tokens[:1000]); err != nil {
		t.Fatal(err)
	}
	var logits []float32
	for _, id := range tokens[1000:] {
		if logits, err = growing.Step(id); err != nil {
			t.Fatal(err)
		}
	}
	whole, err := NewGenerator(w, GeneratorOptions{PrefillBatch: 1300})
	if err != nil {
		t.Fatal(err)
	}
	want, err := whole.Prefill(tokens)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if d := math.Abs(float64(logits[i] - want[i])); d > 1e-5 {
			t.Fatalf("logit %d after growing the cache: %v, want %v", i, logits[i], want[i])
		}
	}
}

func TestGeneratorStepDoesNotAllocate(t *testing.T) {
	w, _ := loadStories(t)
	g, err := NewGenerator(w, GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Prefill(storiesPromptIDs); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(50, func() {
		if _, err := g.Step(300); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Step allocates %v times per token, want 0", allocs)
	}
}

// recordingDelta records the n of every AddDelta call per linear and adds a
// large bonus to one logit of the output head.
type recordingDelta struct {
	head  *model.Linear
	boost int
	calls map[*model.Linear][]int
}

func newRecordingDelta(w *model.Weights, boost int) *recordingDelta {
	return &recordingDelta{head: w.Output, boost: boost, calls: map[*model.Linear][]int{}}
}

func (d *recordingDelta) AddDelta(lin *model.Linear, y, x []float32, n int) error {
	d.calls[lin] = append(d.calls[lin], n)
	if len(y) != n*lin.Out || len(x) != n*lin.In {
		return fmt.Errorf("AddDelta(%s): len(y) %d, len(x) %d for n %d", lin.Name, len(y), len(x), n)
	}
	if lin == d.head {
		y[d.boost] += 1000
	}
	return nil
}

func TestGenerateDeltaHook(t *testing.T) {
	w, tok := loadStories(t)
	d := newRecordingDelta(w, 300)
	g, err := NewGenerator(w, GeneratorOptions{Adapter: d})
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.Generate(context.Background(), tok, storiesPromptIDs, GenerateOptions{MaxTokens: 3})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Tokens) != "[300 300 300]" {
		t.Errorf("with the output head boosted, tokens %v, want [300 300 300]", res.Tokens)
	}
	// One prefill of 5 rows and two steps (the third token is not fed back).
	for _, lin := range allLinears(w) {
		want := "[5 1 1]"
		if lin == w.Output {
			want = "[1 1 1]" // logits of the last prompt row only
		}
		if got := fmt.Sprint(d.calls[lin]); got != want {
			t.Errorf("%s: AddDelta called with n = %s, want %s", lin.Name, got, want)
		}
	}
	// GenerateOptions.Adapter replaces the Generator's for one call only.
	other := newRecordingDelta(w, 301)
	res, err = g.Generate(context.Background(), tok, storiesPromptIDs, GenerateOptions{MaxTokens: 2, Adapter: other})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Tokens) != "[301 301]" {
		t.Errorf("with GenerateOptions.Adapter, tokens %v, want [301 301]", res.Tokens)
	}
	res, err = g.Generate(context.Background(), tok, storiesPromptIDs, GenerateOptions{MaxTokens: 1})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Tokens) != "[300]" {
		t.Errorf("after a call with GenerateOptions.Adapter, tokens %v, want the Generator's own [300]", res.Tokens)
	}
}

func TestGenerateSeeds(t *testing.T) {
	w, tok := loadStories(t)
	run := func(seed uint64) string {
		text, err := Generate(context.Background(), w, tok, storiesPrompt, GenerateOptions{
			MaxTokens: 40, Temperature: 1, TopP: 0.9, Rand: rand.New(rand.NewPCG(seed, 0)),
		})
		if err != nil {
			t.Fatal(err)
		}
		return text
	}
	a, b, c := run(1), run(1), run(2)
	t.Logf("seed 1: %q", a)
	t.Logf("seed 2: %q", c)
	if a != b {
		t.Errorf("seed 1 gave two different texts:\n%q\n%q", a, b)
	}
	if a == c {
		t.Errorf("seeds 1 and 2 gave the same text %q", a)
	}
}

func TestGenerateStopsAndLimits(t *testing.T) {
	w, tok := loadStories(t)
	g, err := NewGenerator(w, GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("MaxTokens", func(t *testing.T) {
		res, err := g.Generate(ctx, tok, storiesPromptIDs, GenerateOptions{MaxTokens: 7})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Tokens) != 7 || res.Reason != StopLength || res.PromptTokens != 5 {
			t.Errorf("got %d tokens, reason %q, %d prompt tokens; want 7, %q, 5", len(res.Tokens), res.Reason, res.PromptTokens, StopLength)
		}
		if res.Text != tok.Decode(slices.Concat(storiesPromptIDs, res.Tokens))[len(storiesPrompt):] {
			t.Errorf("text %q does not decode the tokens %v in context", res.Text, res.Tokens)
		}
	})

	t.Run("full cache", func(t *testing.T) {
		small, err := NewGenerator(w, GeneratorOptions{MaxLen: 9})
		if err != nil {
			t.Fatal(err)
		}
		res, err := small.Generate(ctx, tok, storiesPromptIDs, GenerateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// 5 prompt positions + 4 fed-back tokens fill the cache; the token
		// sampled from the last position is still returned.
		if len(res.Tokens) != 5 || res.Reason != StopLength {
			t.Errorf("got %d tokens, reason %q; want 5, %q", len(res.Tokens), res.Reason, StopLength)
		}
		if _, err := small.Step(1); !errors.Is(err, ErrContextFull) {
			t.Errorf("Step on a full cache: %v, want ErrContextFull", err)
		}
		if _, err := small.Generate(ctx, tok, make([]int, 10), GenerateOptions{}); !errors.Is(err, ErrContextFull) {
			t.Errorf("a prompt longer than the cache: %v, want ErrContextFull", err)
		}
	})

	t.Run("stop string", func(t *testing.T) {
		var streamed strings.Builder
		res, err := g.Generate(ctx, tok, storiesPromptIDs, GenerateOptions{
			MaxTokens: 100,
			// "Lily" arrives over more than one token, and "Lilac" shares
			// its start, so text is held back and released.
			Stop: []string{"Lilac", "Lily"},
			OnToken: func(id int, text string) error {
				streamed.WriteString(text)
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		want := ", there was a little girl named "
		if res.Text != want || res.Reason != StopString || streamed.String() != want {
			t.Errorf("text %q, streamed %q, reason %q; want %q, %q", res.Text, streamed.String(), res.Reason, want, StopString)
		}
	})

	t.Run("EOS", func(t *testing.T) {
		// The output head boosted towards EOS makes it the first token.
		d := newRecordingDelta(w, tok.EOS())
		res, err := g.Generate(ctx, tok, storiesPromptIDs, GenerateOptions{MaxTokens: 5, Adapter: d})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Tokens) != 0 || res.Reason != StopEOS || res.Text != "" {
			t.Errorf("got tokens %v, text %q, reason %q; want none, \"\", %q", res.Tokens, res.Text, res.Reason, StopEOS)
		}
	})
}

// noBOS hides the BOS of a tokenizer, and its appendToken method, so that
// the stream decoder takes its generic path.
type noBOS struct{ tokenizer.Tokenizer }

func (noBOS) BOS() int { return -1 }

func TestGenerateWithoutBOS(t *testing.T) {
	w, tok := loadStories(t)
	ctx := context.Background()
	if _, err := Generate(ctx, w, noBOS{tok}, "", GenerateOptions{MaxTokens: 3}); err == nil || !strings.Contains(err.Error(), "empty prompt") {
		t.Errorf("empty prompt without BOS: err = %v, want an empty-prompt error", err)
	}
	// Without BOS the model sees a different context, so only the
	// agreement of streamed and returned text is checked.
	var streamed strings.Builder
	text, err := Generate(ctx, w, noBOS{tok}, storiesPrompt, GenerateOptions{
		MaxTokens: 20,
		OnToken: func(id int, text string) error {
			streamed.WriteString(text)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("without BOS: %q", text)
	if text == "" || text != streamed.String() {
		t.Errorf("returned %q, streamed %q", text, streamed.String())
	}
}

func TestGenerateCancellation(t *testing.T) {
	w, tok := loadStories(t)
	g, err := NewGenerator(w, GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		n := 0
		res, err := g.Generate(ctx, tok, storiesPromptIDs, GenerateOptions{
			OnToken: func(int, string) error {
				if n++; n == 3 {
					cancel()
				}
				return nil
			},
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if len(res.Tokens) != 3 || n != 3 {
			t.Errorf("%d tokens generated, %d callbacks after cancelling at the third; want 3, 3", len(res.Tokens), n)
		}
		if _, err := g.Generate(ctx, tok, storiesPromptIDs, GenerateOptions{}); !errors.Is(err, context.Canceled) {
			t.Errorf("already cancelled context: err = %v, want context.Canceled", err)
		}
	})

	t.Run("callback error", func(t *testing.T) {
		stop := errors.New("client went away")
		n := 0
		res, err := g.Generate(context.Background(), tok, storiesPromptIDs, GenerateOptions{
			OnToken: func(int, string) error {
				if n++; n == 2 {
					return stop
				}
				return nil
			},
		})
		if !errors.Is(err, stop) {
			t.Fatalf("err = %v, want the callback's error", err)
		}
		if len(res.Tokens) != 2 || n != 2 || res.Text == "" {
			t.Errorf("%d tokens, %d callbacks, text %q; want 2, 2 and the text so far", len(res.Tokens), n, res.Text)
		}
	})
}

func TestStreamTextHoldsBackStopPrefixes(t *testing.T) {
	var calls []string
	s := streamText{StopText: StopText{Stops: []string{"END", "ENOUGH"}}, onToken: func(id int, text string) error {
		calls = append(calls, fmt.Sprintf("%d:%q", id, text))
		return nil
	}}
	for i, piece := range []string{"hello E", "N", "OR", "MOUS E", "NOU", "GH more"} {
		stopped, err := s.add(i, piece)
		if err != nil {
			t.Fatal(err)
		}
		if stopped != (i == 5) {
			t.Fatalf("piece %d: stopped = %v", i, stopped)
		}
	}
	want := `[0:"hello " 1:"" 2:"ENOR" 3:"MOUS " 4:"" 5:""]`
	if got := fmt.Sprint(calls); got != want {
		t.Errorf("callbacks %s, want %s", got, want)
	}
	if got := s.Text(); got != "hello ENORMOUS " {
		t.Errorf("text %q, want %q", got, "hello ENORMOUS ")
	}

	// Without a stop string the held-back tail is released at the end.
	calls = nil
	s = streamText{StopText: StopText{Stops: []string{"END"}}, onToken: func(id int, text string) error {
		calls = append(calls, fmt.Sprintf("%d:%q", id, text))
		return nil
	}}
	if _, err := s.add(0, "the EN"); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(""); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(calls), `[0:"the " -1:"EN"]`; got != want {
		t.Errorf("callbacks %s, want %s", got, want)
	}
}

func TestNewGeneratorRejectsBadInput(t *testing.T) {
	base := model.Config{Dim: 8, HiddenDim: 12, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 4, VocabSize: 5, MaxSeqLen: 8, NormEps: 1e-5, RopeTheta: 10000}
	for _, tc := range []struct {
		name    string
		corrupt func(w *model.Weights)
		opts    GeneratorOptions
		want    string
	}{
		// model.Weights.Validate's own tests cover the weights; these show that
		// NewGenerator runs it.
		{name: "weights", corrupt: func(w *model.Weights) { w.Layers[0].Down.In = 11 }, want: "model.layers.0.mlp.down_proj: shape [8 11], want [8 12]"},
		{name: "max len", corrupt: func(w *model.Weights) { w.Config.MaxSeqLen = 0 }, want: "KV cache length 0"},
		{name: "prefill batch", opts: GeneratorOptions{PrefillBatch: -1}, want: "PrefillBatch -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := model.RandomWeights(base, 1)
			if tc.corrupt != nil {
				tc.corrupt(w)
			}
			_, err := NewGenerator(w, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	w := model.RandomWeights(base, 1)
	g, err := NewGenerator(w, GeneratorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Prefill([]int{1, 5}); err == nil || !strings.Contains(err.Error(), "token 5 (index 1 of 2)") {
		t.Errorf("out-of-vocabulary token: err = %v", err)
	}
	if g.Pos() != 0 {
		t.Errorf("a rejected Prefill moved the position to %d", g.Pos())
	}
}
