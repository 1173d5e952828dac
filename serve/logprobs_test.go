package serve

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
)

// logSoftmax is the reference log-softmax, in float64.
func logSoftmax(logits []float32) []float64 {
	m := math.Inf(-1)
	for _, l := range logits {
		m = max(m, float64(l))
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l) - m)
	}
	lse := m + math.Log(sum)
	out := make([]float64, len(logits))
	for i, l := range logits {
		out[i] = float64(l) - lse
	}
	return out
}

// checkLogprob compares got, the engine's logprobs of token want at a
// position, with ref, the reference log-softmax there: the token's logprob
// and the k most likely tokens' within 1e-4 (ids equal but where the
// reference has a near tie), the alternatives most likely first, their
// probabilities summing to at most 1, the token's own logprob equal to its
// entry among them or below the last.
func checkLogprob(t *testing.T, where string, got TokenLogprob, want int, ref []float64, k int) {
	t.Helper()
	if got.ID != want {
		t.Fatalf("%s: token %d, want %d", where, got.ID, want)
	}
	if d := math.Abs(got.Logprob - ref[want]); d > 1e-4 {
		t.Errorf("%s: logprob %.6f, reference %.6f", where, got.Logprob, ref[want])
	}
	order := make([]int, len(ref))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return -cmpFloat(ref[a], ref[b]) })
	if len(got.Top) != k {
		t.Fatalf("%s: %d alternatives, want %d", where, len(got.Top), k)
	}
	var mass float64
	for r, a := range got.Top {
		mass += math.Exp(a.Logprob)
		if d := math.Abs(a.Logprob - ref[order[r]]); d > 1e-4 {
			t.Errorf("%s: alternative %d logprob %.6f, reference %.6f", where, r, a.Logprob, ref[order[r]])
		}
		if a.ID != order[r] && math.Abs(ref[a.ID]-ref[order[r]]) > 1e-4 {
			t.Errorf("%s: alternative %d is token %d, reference %d", where, r, a.ID, order[r])
		}
		if r > 0 && a.Logprob > got.Top[r-1].Logprob {
			t.Errorf("%s: alternatives not most likely first: %v", where, got.Top)
		}
		if a.ID == got.ID && a.Logprob != got.Logprob {
			t.Errorf("%s: token %d has logprob %v and %v among the alternatives", where, a.ID, got.Logprob, a.Logprob)
		}
	}
	if mass > 1+1e-9 {
		t.Errorf("%s: the alternatives' probabilities sum to %v > 1", where, mass)
	}
	if k > 0 && !slices.ContainsFunc(got.Top, func(a TopLogprob) bool { return a.ID == got.ID }) && got.Logprob > got.Top[k-1].Logprob {
		t.Errorf("%s: token %d (logprob %v) is more likely than the last alternative %v but not among them", where, got.ID, got.Logprob, got.Top[k-1])
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestEngineLogprobsMatchGenerator runs sampled requests (temperature 0.7,
// top-p 0.8) asking for logprobs of the prompt and of the completion, with
// adapters and without, in a batch beside requests that do not ask, then
// runs each request's tokens through infer.Generator with the lora.Adapter
// read from the same file (a path that shares no code with the engine's
// batch or the store) and checks every logprob and alternative against the
// log-softmax of its logits: the logprobs are the model's distribution, not
// the sampler's. Prompts are run in chunks of 5, so the prompt's logprobs
// span chunks.
func TestEngineLogprobsMatchGenerator(t *testing.T) {
	t.Run("batched", func(t *testing.T) { testEngineLogprobs(t, batched(t)) })
	t.Run("per-row", func(t *testing.T) { testEngineLogprobs(t, perRow) })
}

func testEngineLogprobs(t *testing.T, m func(*model.Weights) Model) {
	e, dir := newTestEngine(t, 2, m, EngineOptions{PrefillChunk: 5, MaxStepTokens: 12})
	ck := embedded(t)
	type job struct {
		req    Request
		stream *Stream
	}
	var jobs, others []*job
	submit := func(r Request) *job {
		s, err := e.Submit(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		return &job{req: r, stream: s}
	}
	for i, a := range []string{"", "a1", "a0"} {
		p := prompt(e, []string{"Lily had a big red ball and", "Once upon a time", "The cat sat on the mat. It was"}[i])
		jobs = append(jobs, submit(Request{Adapter: a, Prompt: p, MaxTokens: 14, Temperature: 0.7, TopP: 0.8, Seed: uint64(i + 3),
			Logprobs: true, PromptLogprobs: i != 2, TopLogprobs: []int{5, 0, 20}[i]}))
		others = append(others, submit(Request{Adapter: a, Prompt: p, MaxTokens: 10, Temperature: 0.9, Seed: 9}))
	}
	for _, j := range others {
		if res := j.stream.Result(); res.Err != nil || res.Logprobs != nil || res.PromptLogprobs != nil {
			t.Fatalf("a request without logprobs: error %v, %d logprobs, %d prompt logprobs", res.Err, len(res.Logprobs), len(res.PromptLogprobs))
		}
	}
	for _, j := range jobs {
		var streamed, streamedPrompt []TokenLogprob
		var text string
		for c := range j.stream.C {
			streamed = append(streamed, c.Logprobs...)
			streamedPrompt = append(streamedPrompt, c.PromptLogprobs...)
			text += c.Text
		}
		res := j.stream.Result()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		name := "adapter " + j.req.Adapter
		if len(res.Logprobs) != res.CompletionTokens || res.CompletionTokens == 0 {
			t.Fatalf("%s: %d logprobs for %d tokens", name, len(res.Logprobs), res.CompletionTokens)
		}
		if text != res.Text || !slices.EqualFunc(streamed, res.Logprobs, sameLogprob) || !slices.EqualFunc(streamedPrompt, res.PromptLogprobs, sameLogprob) {
			t.Errorf("%s: the stream's text and logprobs differ from the result's", name)
		}
		ids := make([]int, len(res.Logprobs))
		for i, lp := range res.Logprobs {
			ids[i] = lp.ID
		}
		// The tokens decode, after the prompt, to the text.
		full := ck.Tokenizer.Decode(append(slices.Clone(j.req.Prompt), ids...))
		if got, ok := strings.CutPrefix(full, ck.Tokenizer.Decode(j.req.Prompt)); !ok || got != res.Text {
			t.Errorf("%s: the logprobs' tokens decode to %q after the prompt, the text is %q", name, got, res.Text)
		}
		wantPrompt := 0
		if j.req.PromptLogprobs {
			wantPrompt = len(j.req.Prompt) - 1
		}
		if len(res.PromptLogprobs) != wantPrompt {
			t.Fatalf("%s: %d prompt logprobs, want %d", name, len(res.PromptLogprobs), wantPrompt)
		}

		var ad infer.Adapter
		if j.req.Adapter != "" {
			a, err := lora.LoadFor(filepath.Join(dir, j.req.Adapter), ck.Weights)
			if err != nil {
				t.Fatal(err)
			}
			ad = a
		}
		all := append(slices.Clone(j.req.Prompt), ids...)
		g, err := infer.NewGenerator(ck.Weights, infer.GeneratorOptions{MaxLen: len(all), Adapter: ad})
		if err != nil {
			t.Fatal(err)
		}
		for pos, tok := range all[:len(all)-1] {
			logits, err := g.Step(tok)
			if err != nil {
				t.Fatal(err)
			}
			ref := logSoftmax(logits)
			next := all[pos+1]
			if pos+1 < len(j.req.Prompt) {
				if j.req.PromptLogprobs {
					checkLogprob(t, fmt.Sprintf("%s prompt token %d", name, pos+1), res.PromptLogprobs[pos], next, ref, j.req.TopLogprobs)
				}
				continue
			}
			checkLogprob(t, fmt.Sprintf("%s generated token %d", name, pos+1-len(j.req.Prompt)), res.Logprobs[pos+1-len(j.req.Prompt)], next, ref, j.req.TopLogprobs)
		}
	}
}

func sameLogprob(a, b TokenLogprob) bool {
	return a.ID == b.ID && a.Logprob == b.Logprob && slices.Equal(a.Top, b.Top)
}

func TestEngineRefusesTooManyAlternatives(t *testing.T) {
	e, _ := newTestEngine(t, 0, nil, EngineOptions{})
	for _, k := range []int{-1, MaxTopLogprobs + 1} {
		if _, err := e.Submit(context.Background(), Request{Prompt: prompt(e, "Hi"), Logprobs: true, TopLogprobs: k}); err == nil {
			t.Errorf("top logprobs %d accepted", k)
		}
	}
}

// BenchmarkLogprobs measures what logprobs cost a request that asks, on the
// stories15M shape (vocabulary 32,000): "token" is one generated token's
// logprob and 5 alternatives (on the engine's goroutine, per token);
// "prompt" is a 64-token prompt chunk's step with its logits at every
// position and the logprobs of its tokens, against "prompt-plain", the same
// step as a request without logprobs runs it.
func BenchmarkLogprobs(b *testing.B) {
	w := randomNF4Base(b)
	vocab := w.Config.VocabSize
	b.Run("token", func(b *testing.B) {
		logits := logitsOf(b, w)
		scratch := make([]float32, vocab)
		for b.Loop() {
			tokenLogprob(scratch, logits, 7, 5)
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/token")
	})
	m, err := NewBatchedModel(w)
	if err != nil {
		b.Fatal(err)
	}
	tokens := make([]int, 64)
	for i := range tokens {
		tokens[i] = (i*7919 + 1) % vocab
	}
	last, all, scratch := make([]float32, vocab), make([]float32, len(tokens)*vocab), make([]float32, vocab)
	for _, scored := range []bool{false, true} {
		name := "prompt-plain"
		if scored {
			name = "prompt"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				seq, err := m.NewSequence(len(tokens))
				if err != nil {
					b.Fatal(err)
				}
				r := Row{Seq: seq, Tokens: tokens, Logits: last}
				if scored {
					r.AllLogits = all
				}
				if err := m.Step([]Row{r}); err != nil {
					b.Fatal(err)
				}
				if scored {
					for t := range len(tokens) - 1 {
						tokenLogprob(scratch, all[t*vocab:(t+1)*vocab], tokens[t+1], 5)
					}
				}
				seq.Close()
			}
			b.ReportMetric(float64(len(tokens))*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// logitsOf returns the base's logits after BOS.
func logitsOf(b *testing.B, w *model.Weights) []float32 {
	g, err := infer.NewGenerator(w, infer.GeneratorOptions{MaxLen: 1})
	if err != nil {
		b.Fatal(err)
	}
	logits, err := g.Step(1)
	if err != nil {
		b.Fatal(err)
	}
	return slices.Clone(logits)
}

// noAllLogits is a Model that ignores Row.AllLogits.
type noAllLogits struct{ Model }

func (m noAllLogits) Step(rows []Row) error {
	rows = slices.Clone(rows)
	for i := range rows {
		rows[i].AllLogits = nil
	}
	return m.Model.Step(rows)
}

// TestEnginePromptLogprobsEdges: a prompt of one token is scored with no
// entries (nothing predicts its only token) but still says so in a chunk;
// a Model that does not write AllLogits fails the request with an error
// naming it rather than giving made-up logprobs.
func TestEnginePromptLogprobsEdges(t *testing.T) {
	e, _ := newTestEngine(t, 0, nil, EngineOptions{})
	s, err := e.Submit(context.Background(), Request{Prompt: []int{1}, MaxTokens: 3, Logprobs: true, PromptLogprobs: true})
	if err != nil {
		t.Fatal(err)
	}
	scored := false
	for c := range s.C {
		scored = scored || c.PromptLogprobs != nil
	}
	if res := s.Result(); res.Err != nil || !scored || res.PromptLogprobs == nil || len(res.PromptLogprobs) != 0 || len(res.Logprobs) != res.CompletionTokens {
		t.Errorf("one-token prompt: error %v, scored chunk %v, %d prompt logprobs", res.Err, scored, len(res.PromptLogprobs))
	}

	ignoring, _ := newTestEngine(t, 0, func(w *model.Weights) Model { return noAllLogits{batched(t)(w)} }, EngineOptions{})
	s, err = ignoring.Submit(context.Background(), Request{Prompt: prompt(ignoring, "Once upon a time"), MaxTokens: 3, Logprobs: true, PromptLogprobs: true})
	if err != nil {
		t.Fatal(err)
	}
	if res := s.Result(); res.Err == nil || !strings.Contains(res.Err.Error(), "AllLogits") {
		t.Errorf("a model that ignores AllLogits: error %v", res.Err)
	}
}
