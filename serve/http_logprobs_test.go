package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/lora/loragraph"
	"github.com/golora/golora/model/graph"
)

// post sends body to path and decodes the JSON answer into v.
func post(t *testing.T, srv *httptest.Server, path, body string, v any) int {
	t.Helper()
	resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v in %s", path, err, b)
	}
	return resp.StatusCode
}

// echoResponse is the part of a /v1/completions answer the echo test reads;
// token_logprobs are pointers to see the null of the first token.
type echoResponse struct {
	Choices []struct {
		Text     string `json:"text"`
		Logprobs struct {
			Tokens        []string             `json:"tokens"`
			TokenLogprobs []*float64           `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
			TextOffset    []int                `json:"text_offset"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// TestEchoLogprobsEqualTrainingLoss scores a text the way lm-evaluation-
// harness does against an OpenAI-compatible server (echo, logprobs 1,
// max_tokens 1, temperature 0) and checks the negative mean of the prompt
// tokens' logprobs against the cross-entropy that the training graph
// (model/graph, gorgonia: an independent forward pass) computes on the same
// tokens, with the same adapter, within 1e-4. The prompt is sent as text
// (the server adds BOS) and as token ids (run as given: lm-eval's
// tokenized requests, an array of one array), which must score alike; the
// first token's logprob is null, the echoed text is the prompt, the
// generated token's logprob follows the prompt's, and every position's
// top_logprobs holds the most likely token (what lm-eval's is_greedy reads).
func TestEchoLogprobsEqualTrainingLoss(t *testing.T) {
	srv, e := newTestServer(t, ServerOptions{})
	ck := embedded(t)
	text := "Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog."
	ids := prompt(e, text)
	for _, model := range []string{"stories260K", "a0"} {
		var ga graph.Adapter
		if model != "stories260K" {
			dir := e.Store().src.(Dir)
			a, err := lora.LoadFor(filepath.Join(string(dir), model), ck.Weights)
			if err != nil {
				t.Fatal(err)
			}
			if ga, err = loragraph.New(a); err != nil {
				t.Fatal(err)
			}
		}
		g, err := graph.New(ck.Weights, graph.Options{Batch: 1, SeqLen: len(ids) - 1, Adapter: ga})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.SetBatch(ids[:len(ids)-1], ids[1:]); err != nil {
			t.Fatal(err)
		}
		loss, err := g.Forward(context.Background())
		g.Close()
		if err != nil {
			t.Fatal(err)
		}
		idsJSON, _ := json.Marshal([][]int{ids})
		textJSON, _ := json.Marshal(text)
		var scores [][]*float64
		for _, p := range []string{string(textJSON), string(idsJSON)} {
			var res echoResponse
			body := fmt.Sprintf(`{"model":%q,"prompt":%s,"echo":true,"logprobs":1,"max_tokens":1,"temperature":0}`, model, p)
			if code := post(t, srv, "/v1/completions", body, &res); code != 200 || len(res.Choices) != 1 {
				t.Fatalf("%s: status %d, %d choices", model, code, len(res.Choices))
			}
			c := res.Choices[0]
			lp := c.Logprobs
			if res.Usage.PromptTokens != len(ids) || len(lp.Tokens) != len(ids)+1 || len(lp.TokenLogprobs) != len(ids)+1 || len(lp.TopLogprobs) != len(ids)+1 || len(lp.TextOffset) != len(ids)+1 {
				t.Fatalf("%s: %d prompt tokens, logprobs of %d tokens; want %d and %d", model, res.Usage.PromptTokens, len(lp.TokenLogprobs), len(ids), len(ids)+1)
			}
			if !strings.HasPrefix(c.Text, text) || len(c.Text) == len(text) {
				t.Errorf("%s: text %q does not echo the prompt then a token", model, c.Text)
			}
			if lp.TokenLogprobs[0] != nil || lp.TopLogprobs[0] != nil {
				t.Errorf("%s: the first token's logprob is %v, want null", model, *lp.TokenLogprobs[0])
			}
			var sum float64
			for i := 1; i < len(ids); i++ {
				sum += *lp.TokenLogprobs[i]
			}
			if got := -sum / float64(len(ids)-1); math.Abs(got-float64(loss)) > 1e-4 {
				t.Errorf("%s: −mean prompt logprob %.6f, training graph's loss %.6f", model, got, loss)
			}
			for i := 1; i <= len(ids); i++ {
				best := math.Inf(-1)
				for _, v := range lp.TopLogprobs[i] {
					best = max(best, v)
				}
				tok := *lp.TokenLogprobs[i]
				if len(lp.TopLogprobs[i]) < 1 || len(lp.TopLogprobs[i]) > 2 || tok > best {
					t.Errorf("%s: token %d: logprob %v, top_logprobs %v", model, i, tok, lp.TopLogprobs[i])
				}
				if v, ok := lp.TopLogprobs[i][lp.Tokens[i]]; ok && v != tok {
					t.Errorf("%s: token %d %q: logprob %v, %v in top_logprobs", model, i, lp.Tokens[i], tok, v)
				}
			}
			// Greedy: the generated token is the most likely one.
			if tok, top := *lp.TokenLogprobs[len(ids)], lp.TopLogprobs[len(ids)]; len(top) != 1 || top[lp.Tokens[len(ids)]] != tok {
				t.Errorf("%s: greedy token %q (%v) is not the most likely %v", model, lp.Tokens[len(ids)], tok, top)
			}
			checkOffsets(t, c.Text, lp.Tokens, lp.TextOffset)
			scores = append(scores, lp.TokenLogprobs[1:len(ids)])
			if p != string(textJSON) {
				continue
			}

			// Streamed, the echo and its logprobs come first, then the
			// token: together the same.
			stream := client(srv, "").Completions.NewStreaming(context.Background(), openai.CompletionNewParams{
				Model: openai.CompletionNewParamsModel(model), Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(text)},
				Echo: openai.Bool(true), Logprobs: openai.Int(1), MaxTokens: openai.Int(1), Temperature: openai.Float(0),
			})
			var streamed string
			var tokens []string
			var logprobs []float64
			var offsets []int
			for stream.Next() {
				for _, ch := range stream.Current().Choices {
					streamed += ch.Text
					tokens = append(tokens, ch.Logprobs.Tokens...)
					logprobs = append(logprobs, ch.Logprobs.TokenLogprobs...)
					for _, o := range ch.Logprobs.TextOffset {
						offsets = append(offsets, int(o))
					}
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if streamed != c.Text || !slices.Equal(tokens, lp.Tokens) || !slices.Equal(offsets, lp.TextOffset) || len(logprobs) != len(lp.TokenLogprobs) {
				t.Fatalf("%s: streamed %q with %d tokens, whole %q with %d", model, streamed, len(tokens), c.Text, len(lp.Tokens))
			}
			for i := 1; i < len(logprobs); i++ {
				if logprobs[i] != *lp.TokenLogprobs[i] {
					t.Errorf("%s: token %d: streamed logprob %v, whole %v", model, i, logprobs[i], *lp.TokenLogprobs[i])
				}
			}
		}
		// max_tokens 0 scores the prompt alone.
		var alone echoResponse
		body := fmt.Sprintf(`{"model":%q,"prompt":%s,"echo":true,"logprobs":1,"max_tokens":0}`, model, textJSON)
		if code := post(t, srv, "/v1/completions", body, &alone); code != 200 || len(alone.Choices) != 1 {
			t.Fatalf("%s, max_tokens 0: status %d", model, code)
		}
		scores = append(scores, alone.Choices[0].Logprobs.TokenLogprobs[1:])
		if c := alone.Choices[0]; c.Text != text || len(c.Logprobs.Tokens) != len(ids) || c.Logprobs.TokenLogprobs[0] != nil || alone.Usage.CompletionTokens != 0 {
			t.Errorf("%s, max_tokens 0: text %q, %d tokens, usage %+v", model, c.Text, len(c.Logprobs.Tokens), alone.Usage)
		}
		for _, s := range scores[1:] {
			if !slices.EqualFunc(scores[0], s, func(a, b *float64) bool { return *a == *b }) {
				t.Errorf("%s: the prompt as text, as token ids and alone score differently", model)
			}
		}
	}
}

// checkOffsets checks that each token's text is in text at its offset.
func checkOffsets(t *testing.T, text string, tokens []string, offsets []int) {
	t.Helper()
	for i, tok := range tokens {
		if o := offsets[i]; o < 0 || o+len(tok) > len(text) || text[o:o+len(tok)] != tok {
			t.Errorf("token %d %q at offset %d is not there in %q", i, tok, o, text)
			return
		}
	}
}

// TestOpenAIClientLogprobsAndChoices drives n and logprobs with the
// official client: n = 3 with a seed gives three choices, each the text and
// logprobs of the request alone with n = 1 and the seed ChoiceSeed gives
// it, and the same streamed (chunks of the three choices interleaved,
// told apart by their index).
func TestOpenAIClientLogprobsAndChoices(t *testing.T) {
	srv, _ := newTestServer(t, ServerOptions{})
	c := client(srv, "")
	ctx := context.Background()
	params := openai.CompletionNewParams{
		Model:       "a1",
		Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		MaxTokens:   openai.Int(16),
		Temperature: openai.Float(1),
		Seed:        openai.Int(42),
		N:           openai.Int(3),
		Logprobs:    openai.Int(3),
	}
	res, err := c.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 3 {
		t.Fatalf("%d choices, want 3", len(res.Choices))
	}
	texts := map[string]bool{}
	completion := int64(0)
	for i, ch := range res.Choices {
		if ch.Index != int64(i) {
			t.Errorf("choice %d has index %d", i, ch.Index)
		}
		texts[ch.Text] = true
		lp := ch.Logprobs
		completion += int64(len(lp.Tokens))
		if len(lp.Tokens) == 0 || len(lp.TokenLogprobs) != len(lp.Tokens) || len(lp.TopLogprobs) != len(lp.Tokens) || strings.Join(lp.Tokens, "") != ch.Text {
			t.Errorf("choice %d: logprobs %+v do not cover the text %q", i, lp, ch.Text)
		}
		offsets := make([]int, len(lp.TextOffset))
		for k, o := range lp.TextOffset {
			offsets[k] = int(o)
		}
		checkOffsets(t, ch.Text, lp.Tokens, offsets)
		for k, top := range lp.TopLogprobs {
			var mass float64
			for _, v := range top {
				mass += math.Exp(v)
			}
			if mass > 1+1e-9 || len(top) < 3 || len(top) > 4 {
				t.Errorf("choice %d token %d: top_logprobs %v (probabilities summing to %v)", i, k, top, mass)
			}
			if v, ok := top[lp.Tokens[k]]; ok && v != lp.TokenLogprobs[k] {
				t.Errorf("choice %d token %d: logprob %v, %v in top_logprobs", i, k, lp.TokenLogprobs[k], v)
			}
		}

		single := params
		single.N = openai.Int(1)
		single.Seed = openai.Int(int64(ChoiceSeed(42, i)))
		alone, err := c.Completions.New(ctx, single)
		if err != nil {
			t.Fatal(err)
		}
		if alone.Choices[0].Text != ch.Text || !sameRowLogprobs(alone.Choices[0].Logprobs.TokenLogprobs, lp.TokenLogprobs) {
			t.Errorf("choice %d: %q, alone with seed ChoiceSeed(42, %d): %q", i, ch.Text, i, alone.Choices[0].Text)
		}
	}
	if len(texts) < 2 {
		t.Errorf("3 sampled choices all gave %q", res.Choices[0].Text)
	}
	if res.Usage.CompletionTokens != completion || res.Usage.PromptTokens != res.Usage.TotalTokens-completion {
		t.Errorf("usage %+v, want the prompt once and %d completion tokens", res.Usage, completion)
	}

	params.StreamOptions.IncludeUsage = openai.Bool(true)
	stream := c.Completions.NewStreaming(ctx, params)
	got := make([]string, 3)
	gotLogprobs := make([][]float64, 3)
	finished := 0
	for stream.Next() {
		for _, ch := range stream.Current().Choices {
			got[ch.Index] += ch.Text
			gotLogprobs[ch.Index] = append(gotLogprobs[ch.Index], ch.Logprobs.TokenLogprobs...)
			if ch.FinishReason != "" {
				finished++
			}
		}
		if u := stream.Current().Usage; u.TotalTokens > 0 && u.CompletionTokens != completion {
			t.Errorf("streamed usage %+v, want %d completion tokens", u, completion)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	for i, ch := range res.Choices {
		if got[i] != ch.Text || !sameRowLogprobs(gotLogprobs[i], ch.Logprobs.TokenLogprobs) {
			t.Errorf("choice %d streamed %q, whole %q", i, got[i], ch.Text)
		}
	}
	if finished != 3 {
		t.Errorf("%d choices finished in the stream, want 3", finished)
	}
}

// TestOpenAIClientChatLogprobs asks the chat endpoint for logprobs with 3
// alternatives and 2 choices, whole and streamed, through the official
// client.
func TestOpenAIClientChatLogprobs(t *testing.T) {
	srv, _ := newTestServer(t, ServerOptions{Chat: chatTemplate(t, minimalChat)})
	c := client(srv, "")
	params := openai.ChatCompletionNewParams{
		Model:       "a0",
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Once upon a time")},
		MaxTokens:   openai.Int(10),
		Seed:        openai.Int(5),
		N:           openai.Int(2),
		Logprobs:    openai.Bool(true),
		TopLogprobs: openai.Int(3),
	}
	res, err := c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 2 {
		t.Fatalf("%d choices, want 2", len(res.Choices))
	}
	for i, ch := range res.Choices {
		var joined string
		for k, lp := range ch.Logprobs.Content {
			joined += lp.Token
			if len(lp.TopLogprobs) != 3 || lp.Logprob > lp.TopLogprobs[0].Logprob || len(lp.Bytes) != len(lp.Token) {
				t.Errorf("choice %d token %d: %+v", i, k, lp)
			}
			var mass float64
			for _, a := range lp.TopLogprobs {
				mass += math.Exp(a.Logprob)
			}
			if mass > 1+1e-9 {
				t.Errorf("choice %d token %d: alternatives' probabilities sum to %v", i, k, mass)
			}
		}
		if joined != ch.Message.Content || int64(len(ch.Logprobs.Content)) == 0 {
			t.Errorf("choice %d: logprobs' tokens %q, content %q", i, joined, ch.Message.Content)
		}
	}
	stream := c.Chat.Completions.NewStreaming(context.Background(), params)
	content := make([][]openai.ChatCompletionTokenLogprob, 2)
	for stream.Next() {
		for _, ch := range stream.Current().Choices {
			content[ch.Index] = append(content[ch.Index], ch.Logprobs.Content...)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	for i, ch := range res.Choices {
		if !slices.EqualFunc(content[i], ch.Logprobs.Content, func(a, b openai.ChatCompletionTokenLogprob) bool {
			return a.Token == b.Token && a.Logprob == b.Logprob && len(a.TopLogprobs) == len(b.TopLogprobs)
		}) {
			t.Errorf("choice %d: streamed logprobs differ from the whole response's", i)
		}
	}
}

// TestServerRefusesBadLogprobsAndChoices checks each bad value gets a 400
// naming its field, and that a request's n counts against MaxConcurrent.
func TestServerRefusesBadLogprobsAndChoices(t *testing.T) {
	srv, _ := newTestServer(t, ServerOptions{Chat: chatTemplate(t, "{% for m in messages %}{{ m.content }}{% endfor %}")})
	for _, tc := range []struct{ path, body, param string }{
		{"/v1/completions", `{"model":"a0","prompt":"Hi","logprobs":6}`, "logprobs"},
		{"/v1/completions", `{"model":"a0","prompt":"Hi","logprobs":-1}`, "logprobs"},
		{"/v1/completions", `{"model":"a0","prompt":"Hi","logprobs":true}`, "logprobs"},
		{"/v1/completions", `{"model":"a0","prompt":"Hi","top_logprobs":2}`, "top_logprobs"},
		{"/v1/completions", `{"model":"a0","prompt":"Hi","n":0}`, "n"},
		{"/v1/completions", `{"model":"a0","prompt":"Hi","max_tokens":0}`, "max_tokens"},
		{"/v1/completions", `{"model":"a0","prompt":"Hi","max_tokens":-1,"echo":true}`, "max_tokens"},
		{"/v1/completions", `{"model":"a0","prompt":"Hi","n":17}`, "n"},
		{"/v1/completions", `{"model":"a0","prompt":[1, 99999]}`, "prompt"},
		{"/v1/completions", `{"model":"a0","prompt":[[1, 2], [3]]}`, "prompt"},
		{"/v1/completions", `{"model":"a0","prompt":[]}`, "prompt"},
		{"/v1/chat/completions", `{"model":"a0","messages":[{"role":"user","content":"Hi"}],"logprobs":true,"top_logprobs":21}`, "top_logprobs"},
		{"/v1/chat/completions", `{"model":"a0","messages":[{"role":"user","content":"Hi"}],"top_logprobs":2}`, "top_logprobs"},
		{"/v1/chat/completions", `{"model":"a0","messages":[{"role":"user","content":"Hi"}],"logprobs":3}`, "logprobs"},
		{"/v1/chat/completions", `{"model":"a0","messages":[{"role":"user","content":"Hi"}],"echo":true}`, "echo"},
	} {
		var res struct {
			Error struct {
				Message string `json:"message"`
				Param   string `json:"param"`
			} `json:"error"`
		}
		if code := post(t, srv, tc.path, tc.body, &res); code != 400 || res.Error.Param != tc.param || res.Error.Message == "" {
			t.Errorf("%s %s: status %d, param %q (%s); want 400 naming %q", tc.path, tc.body, code, res.Error.Param, res.Error.Message, tc.param)
		}
	}

	e, _ := newTestEngine(t, 0, nil, EngineOptions{})
	s := NewServer(e, ServerOptions{MaxConcurrent: 4, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	small := httptest.NewServer(s)
	defer small.Close()
	if !s.acquire(3) { // three completions in progress
		t.Fatal("4 places, 3 not free")
	}
	c := client(small, "")
	params := openai.CompletionNewParams{Model: "base", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Hi")}, MaxTokens: openai.Int(2), N: openai.Int(2)}
	var apiErr *openai.Error
	if _, err := c.Completions.New(context.Background(), params); !errors.As(err, &apiErr) || apiErr.StatusCode != 429 {
		t.Errorf("n = 2 with one place free: %v, want 429", err)
	}
	params.N = openai.Int(1)
	if _, err := c.Completions.New(context.Background(), params); err != nil {
		t.Errorf("n = 1 with one place free: %v", err)
	}
	params.N = openai.Int(5)
	if _, err := c.Completions.New(context.Background(), params); !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "n" {
		t.Errorf("n = 5 over MaxConcurrent 4: %v, want 400 naming n", err)
	}
	s.release(3)
}

// TestStreamedChoicesEndWhenClientLeaves cancels a streamed request of 3
// choices after its first chunk: the handler must return (its places in
// MaxConcurrent freed), not wait for choices whose forwarding has stopped.
func TestStreamedChoicesEndWhenClientLeaves(t *testing.T) {
	e, _ := newTestEngine(t, 0, nil, EngineOptions{})
	s := NewServer(e, ServerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	// Not closed on failure: Close would wait for the handler that hangs.
	srv := httptest.NewServer(s)
	ctx, cancel := context.WithCancel(context.Background())
	params := openai.CompletionNewParams{Model: "base", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once")},
		MaxTokens: openai.Int(200), N: openai.Int(3), Logprobs: openai.Int(2), Temperature: openai.Float(1)}
	stream := client(srv, "").Completions.NewStreaming(ctx, params)
	if !stream.Next() {
		t.Fatal(stream.Err())
	}
	cancel()
	for stream.Next() {
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(s.sem) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d places still taken 10 s after the client left", len(s.sem))
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv.Close()
}

// sameRowLogprobs reports whether two runs of one seeded choice gave the
// same log-probabilities within 1e-4. Not bit for bit: the choices of a
// request may be prefilled in different steps when the machine is busy, and
// a row decoded in a step of several tokens goes through the batch's
// panel kernels, whose sums round differently from its matrix-vector ones
// (the batch promises the same tokens and float32-close logits,
// TestBatchMatchesGeneratorPerRow).
func sameRowLogprobs(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool { return math.Abs(x-y) <= 1e-4 })
}
