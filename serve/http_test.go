package serve

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/golora/golora/model/chat"
)

// newTestServer serves the embedded model and 2 adapters on a loopback
// httptest server.
// minimalChat is a minimal chat template: the contents in turn, then the
// generation prompt.
const minimalChat = "{{ bos_token }}{% for m in messages %}{{ m.content }} {% endfor %}{% if add_generation_prompt %}Then{% endif %}"

// chatTemplate parses the chat template src, with BOS <s> and EOS </s>.
func chatTemplate(t *testing.T, src string) *chat.Template {
	t.Helper()
	tmpl, err := chat.NewTemplate(src, "test", "<s>", "</s>")
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func newTestServer(t *testing.T, opts ServerOptions) (*httptest.Server, *Engine) {
	t.Helper()
	metrics := NewMetrics()
	e, _ := newTestEngine(t, 2, nil, EngineOptions{Observer: metrics})
	e.store.opts.Events = metrics.StoreEvent
	opts.BaseName = "stories260K"
	opts.Metrics = metrics
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(NewServer(e, opts))
	t.Cleanup(srv.Close)
	return srv, e
}

func client(srv *httptest.Server, key string) *openai.Client {
	c := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	return &c
}

// TestOpenAIClient drives the server with the official Go client: plain and
// streamed completions (whose text must agree for a seeded request), usage,
// the model list and errors.
func TestOpenAIClient(t *testing.T) {
	srv, e := newTestServer(t, ServerOptions{})
	c := client(srv, "unused")
	ctx := context.Background()
	params := openai.CompletionNewParams{
		Model:       "a1",
		Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		MaxTokens:   openai.Int(24),
		Temperature: openai.Float(0.7),
		Seed:        openai.Int(42),
	}
	res, err := c.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 1 || res.Choices[0].Text == "" {
		t.Fatalf("completion %+v has no text", res)
	}
	wantPrompt := len(prompt(e, "Once upon a time"))
	if u := res.Usage; u.PromptTokens != int64(wantPrompt) || u.CompletionTokens < 1 || u.CompletionTokens > 24 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Errorf("usage %+v, want %d prompt tokens and 1…24 completion tokens", u, wantPrompt)
	}

	params.StreamOptions.IncludeUsage = openai.Bool(true)
	stream := c.Completions.NewStreaming(ctx, params)
	var text, finish string
	var usage openai.CompletionUsage
	chunks := 0
	for stream.Next() {
		ch := stream.Current()
		for _, choice := range ch.Choices {
			text += choice.Text
			if choice.FinishReason != "" {
				finish = string(choice.FinishReason)
			}
		}
		if ch.Usage.TotalTokens > 0 {
			usage = ch.Usage
		}
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text != res.Choices[0].Text || finish != string(res.Choices[0].FinishReason) {
		t.Errorf("streamed %q (%s), plain %q (%s): the same seeded request", text, finish, res.Choices[0].Text, res.Choices[0].FinishReason)
	}
	if chunks < 3 || usage.PromptTokens != res.Usage.PromptTokens || usage.CompletionTokens != res.Usage.CompletionTokens || usage.TotalTokens != res.Usage.TotalTokens {
		t.Errorf("%d chunks with usage %+v, want several and %+v", chunks, usage, res.Usage)
	}

	page, err := c.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "stories260K,a0,a1" {
		t.Errorf("models %v, want the base then a0 and a1", ids)
	}
	for id, owner := range map[string]string{"stories260K": "base", "a1": "adapter"} {
		m, err := c.Models.Get(ctx, id)
		if err != nil || m.ID != id || m.OwnedBy != owner || m.Object != "model" {
			t.Errorf("model %s: %+v, %v; want it owned by %s", id, m, err, owner)
		}
	}
	var notFound *openai.Error
	if _, err := c.Models.Get(ctx, "nope"); !errors.As(err, &notFound) || notFound.StatusCode != 404 || notFound.Param != "model" {
		t.Errorf("model nope: %v, want a 404 naming model", err)
	}

	for _, tc := range []struct {
		name   string
		edit   func(*openai.CompletionNewParams)
		status int
		param  string
	}{
		{"unknown adapter", func(p *openai.CompletionNewParams) { p.Model = "nope" }, 404, "model"},
		{"temperature", func(p *openai.CompletionNewParams) { p.Temperature = openai.Float(5) }, 400, "temperature"},
		{"max tokens", func(p *openai.CompletionNewParams) { p.MaxTokens = openai.Int(100000) }, 400, "max_tokens"},
		{"n", func(p *openai.CompletionNewParams) { p.N = openai.Int(17) }, 400, "n"},
		{"logprobs", func(p *openai.CompletionNewParams) { p.Logprobs = openai.Int(6) }, 400, "logprobs"},
		{"prompt too long", func(p *openai.CompletionNewParams) {
			p.Prompt.OfString = openai.String(strings.Repeat("the cat sat on the mat ", 200))
		}, 400, "prompt"},
	} {
		p := params
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
		tc.edit(&p)
		_, err := c.Completions.New(ctx, p)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status || apiErr.Param != tc.param || apiErr.Message == "" {
			t.Errorf("%s: %v, want status %d naming %q", tc.name, err, tc.status, tc.param)
		}
	}
}

// TestServerUnroutedJSON checks that requests no endpoint takes get
// OpenAI's JSON error body, as every other error does: 404 for an unknown
// path, 405 with Allow for a known path with another method.
func TestServerUnroutedJSON(t *testing.T) {
	srv, _ := newTestServer(t, ServerOptions{})
	for _, tc := range []struct {
		method, path string
		code         int
		allow, msg   string
	}{
		{"GET", "/v1/embeddings", 404, "", "no endpoint GET /v1/embeddings"},
		{"POST", "/nope", 404, "", "no endpoint POST /nope"},
		{"DELETE", "/v1/models", 405, "GET, HEAD", "method DELETE is not allowed on /v1/models"},
		{"GET", "/v1/completions", 405, "POST", "method GET is not allowed on /v1/completions"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Message, Type string }
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.code || resp.Header.Get("Allow") != tc.allow ||
			resp.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(body.Error.Message, tc.msg) || body.Error.Type != "invalid_request_error" {
			t.Errorf("%s %s: %d, Allow %q, %+v (%v); want %d, Allow %q, a JSON error starting %q",
				tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), body, err, tc.code, tc.allow, tc.msg)
		}
	}
}

func TestServerAuthLoadUnloadAndMetrics(t *testing.T) {
	srv, e := newTestServer(t, ServerOptions{APIKey: "sekrit"})
	ctx := context.Background()
	params := openai.CompletionNewParams{
		Model:     "stories260K",
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("Hi")},
		MaxTokens: openai.Int(3),
	}
	var apiErr *openai.Error
	if _, err := client(srv, "wrong").Completions.New(ctx, params); !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("wrong key: %v, want 401", err)
	}
	c := client(srv, "sekrit")
	if _, err := c.Completions.New(ctx, params); err != nil {
		t.Fatal(err)
	}
	do := func(method, path string, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer sekrit")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("POST", "/v1/adapters/a0/load?pin=true", ""); code != 200 {
		t.Fatalf("load: %d %s", code, body)
	}
	if cached := e.Store().Cached(); len(cached) != 1 || !cached[0].Pinned {
		t.Errorf("after load?pin=true the cache holds %+v", cached)
	}
	if code, body := do("POST", "/v1/adapters/a0/unload", ""); code != 200 {
		t.Fatalf("unload: %d %s", code, body)
	}
	if code, _ := do("POST", "/v1/adapters/a0/unload", ""); code != 404 {
		t.Errorf("second unload: %d, want 404", code)
	}
	if code, body := do("POST", "/v1/adapters/nope/load", ""); code != 404 || !strings.Contains(body, "unknown adapter") {
		t.Errorf("load of an unknown adapter: %d %s", code, body)
	}
	if code, body := do("POST", "/v1/completions", "{not json"); code != 400 || !strings.Contains(body, `"invalid_request_error"`) {
		t.Errorf("bad JSON: %d %s", code, body)
	}
	if code, body := do("POST", "/v1/chat/completions", `{"model":"stories260K","messages":[{"role":"user","content":"hi"}]}`); code != 404 || !strings.Contains(body, "chat template") {
		t.Errorf("chat without a template: %d %s", code, body)
	}
	if code, _ := do("POST", "/v1/completions", `{"model":"a1","prompt":"`+strings.Repeat("x", 2<<20)+`"}`); code != 413 {
		t.Errorf("2 MiB body: %d, want 413", code)
	}
	code, body := do("GET", "/metrics", "")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		`golora_tokens_total{kind="completion"} 3`,
		`golora_adapter_cache_events_total{event="hit"} 1`,
		`golora_adapter_cache_events_total{event="load_error"} 1`,
		"golora_adapter_pool_fallbacks_total 0", // the adapter loaded took the pool's memory
		"golora_batch_size_count",
		"golora_time_to_first_token_seconds_count 1",
		`golora_http_requests_total{code="401",path="/v1/completions"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestOpenAIClientChat(t *testing.T) {
	srv, _ := newTestServer(t, ServerOptions{Chat: chatTemplate(t, minimalChat)})
	c := client(srv, "")
	params := openai.ChatCompletionNewParams{
		Model:     "a0",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Once upon a time")},
		MaxTokens: openai.Int(10),
		Seed:      openai.Int(1),
	}
	res, err := c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 1 || res.Choices[0].Message.Content == "" || res.Usage.CompletionTokens == 0 {
		t.Fatalf("chat completion %+v", res)
	}
	stream := c.Chat.Completions.NewStreaming(context.Background(), params)
	var text string
	for stream.Next() {
		for _, ch := range stream.Current().Choices {
			text += ch.Delta.Content
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text != res.Choices[0].Message.Content {
		t.Errorf("streamed %q, plain %q", text, res.Choices[0].Message.Content)
	}
}
