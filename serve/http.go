package serve

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/golora/golora/model/chat"

	"github.com/golora/golora/model/infer"
)

// ServerOptions configures a Server. The zero value of each field is the
// default it documents.
type ServerOptions struct {
	// BaseName is the model name of the base model in requests and in
	// /v1/models; "base" when empty. Any other name is an adapter.
	BaseName string
	// MaxBodyBytes bounds a request body; 1 MiB when zero.
	MaxBodyBytes int64
	// MaxPromptTokens bounds a prompt; the engine's context when zero.
	MaxPromptTokens int
	// MaxTokens bounds max_tokens; 1024 when zero.
	MaxTokens int
	// MaxConcurrent bounds the completions being served at once (queued or
	// running), each of a request's n choices counting as one; more get
	// 429. 256 when zero.
	MaxConcurrent int
	// MaxChoices bounds a request's n; 16 when zero (at most
	// MaxConcurrent).
	MaxChoices int
	// Timeout bounds a completion, queueing included; 5 minutes when zero.
	Timeout time.Duration
	// APIKey, when set, is the bearer token every request but /health must
	// carry.
	APIKey string
	// Chat, when set, enables /v1/chat/completions: the messages are
	// rendered with this template (with the generation prompt) and the text
	// is the prompt, without a BOS of the server's own (templates write
	// theirs).
	Chat *chat.Template
	// Logger receives a line per request; slog.Default() when nil.
	Logger *slog.Logger
	// Metrics, when set, is served at /metrics and counts requests.
	Metrics *Metrics
}

// AdapterVersionHeader is the response header of a completion that names
// the version of its adapter, when the store's source is a VersionedSource.
const AdapterVersionHeader = "Golora-Adapter-Version"

// Server is the OpenAI-compatible HTTP API over an Engine:
//
//	POST /v1/completions            (streaming with server-sent events)
//	POST /v1/chat/completions       (when ServerOptions.Chat is set)
//	GET  /v1/models                 the base and the adapters known to the store
//	GET  /v1/models/{model}         one of them (OpenAI's retrieve model)
//	GET  /v1/adapters               the adapters in the cache
//	POST /v1/adapters/{name}/load   load or reload an adapter
//	POST /v1/adapters/{name}/unload drop it from the cache
//	GET  /metrics, GET /health
//
// Every error, including an unknown path (404) or method (405, with
// Allow), has OpenAI's JSON error body.
//
// Completions take, besides the sampling fields (max_tokens, temperature,
// top_p, seed, stop, stream with stream_options.include_usage):
//
//   - prompt (completions): a string, which gets the tokenizer's BOS, or
//     token ids, run as given; alone or in an array of one.
//   - n: that many independent completions of the prompt (MaxChoices at
//     most), each an engine request of its own that counts against
//     MaxConcurrent and the engine's KV budget; choice i is seeded with
//     ChoiceSeed(seed, i) and, streamed, its chunks carry its index.
//     Usage counts the prompt once and every choice's tokens.
//   - logprobs: on completions the number k of alternatives (0–5): each
//     generated token's text, logprob, text_offset in the choice's text,
//     and its top_logprobs, the k most likely tokens and the token itself;
//     on chat a boolean with top_logprobs k (0–20), OpenAI's
//     logprobs.content. Logprobs are the log-softmax of the model's
//     logits, before temperature and top-p (vLLM's default); a token's text
//     is what it adds after the token before it, so a choice's tokens put
//     together are its text. They cost nothing unless asked for.
//   - echo (completions): the prompt is returned before the completion;
//     with logprobs, with the logprobs of every prompt token (null for the
//     first, which nothing predicts): the prompt's logits are then computed
//     at every position (infer.BatchRow.AllLogits). This is how
//     lm-evaluation-harness scores a text (echo, logprobs 1, max_tokens 1);
//     max_tokens 0, allowed with echo only, scores the prompt alone.
//
// A field the server does not implement (best_of other than 1, several
// prompts) is refused with a 400 naming it rather than ignored.
type Server struct {
	e    *Engine
	opts ServerOptions
	log  *slog.Logger
	mux  *http.ServeMux
	sem  chan struct{}
}

// NewServer returns the HTTP API of e.
func NewServer(e *Engine, opts ServerOptions) *Server {
	if opts.BaseName == "" {
		opts.BaseName = "base"
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.MaxPromptTokens <= 0 {
		opts.MaxPromptTokens = e.MaxContext()
	}
	if opts.MaxTokens <= 0 {
		opts.MaxTokens = 1024
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 256
	}
	if opts.MaxChoices <= 0 {
		opts.MaxChoices = 16
	}
	opts.MaxChoices = min(opts.MaxChoices, opts.MaxConcurrent)
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	s := &Server{e: e, opts: opts, log: opts.Logger, mux: http.NewServeMux(), sem: make(chan struct{}, opts.MaxConcurrent)}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.mux.HandleFunc("POST /v1/completions", s.completions)
	s.mux.HandleFunc("POST /v1/chat/completions", s.chatCompletions)
	s.mux.HandleFunc("GET /v1/models", s.models)
	s.mux.HandleFunc("GET /v1/models/{model}", s.model)
	s.mux.HandleFunc("GET /v1/adapters", s.adapters)
	s.mux.HandleFunc("POST /v1/adapters/{name}/load", s.loadAdapter)
	s.mux.HandleFunc("POST /v1/adapters/{name}/unload", s.unloadAdapter)
	s.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	if opts.Metrics != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Metrics.Registry(), promhttp.HandlerOpts{}))
	}
	return s
}

// ServeHTTP checks the bearer token, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	h, pattern := s.mux.Handler(r)
	switch {
	case s.opts.APIKey != "" && r.URL.Path != "/health" && !s.authorized(r):
		rec.Header().Set("WWW-Authenticate", `Bearer realm="golora"`)
		writeError(rec, http.StatusUnauthorized, "authentication_error", "missing or wrong bearer token (Authorization: Bearer <key>)")
	case pattern == "":
		unrouted(rec, r, h)
	default:
		s.mux.ServeHTTP(rec, r)
	}
	if s.opts.Metrics != nil {
		// The route, not the URL: names in paths would make a label
		// value per adapter.
		_, path, _ := strings.Cut(pattern, " ")
		if path == "" {
			path = "other"
		}
		s.opts.Metrics.request(path, rec.code)
	}
	s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.code, "duration", time.Since(start), "remote", r.RemoteAddr)
}

// unrouted answers a request no endpoint takes with OpenAI's JSON error
// body, which clients parse, instead of the mux's plain text: 404 for an
// unknown path, 405 with the Allow header for a known path and another
// method. h is the mux's handler for r, run into a probe to learn which.
func unrouted(w http.ResponseWriter, r *http.Request, h http.Handler) {
	probe := &statusProbe{header: make(http.Header), code: http.StatusNotFound}
	h.ServeHTTP(probe, r)
	if probe.code == http.StatusMethodNotAllowed {
		allow := probe.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeError(w, probe.code, "invalid_request_error", fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
		return
	}
	writeError(w, http.StatusNotFound, "invalid_request_error", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
}

// statusProbe is a ResponseWriter that keeps the status and headers
// written to it and drops the body.
type statusProbe struct {
	header http.Header
	code   int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(code int)        { p.code = code }

func (s *Server) authorized(r *http.Request) bool {
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(key), []byte(s.opts.APIKey)) == 1
}

// statusWriter remembers the status code written, for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// apiError is an error with the HTTP status and OpenAI error type it maps to.
type apiError struct {
	status int
	typ    string
	param  string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", param: param, msg: fmt.Sprintf(format, args...)}
}

// writeError writes OpenAI's error body.
func writeError(w http.ResponseWriter, status int, typ, msg string) {
	writeAPIError(w, &apiError{status: status, typ: typ, msg: msg})
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	body := map[string]any{"error": map[string]any{
		"message": e.msg, "type": e.typ, "param": nullable(e.param), "code": nil,
	}}
	writeJSON(w, e.status, body)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// toAPIError maps an engine or store error to its HTTP status.
func toAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ErrUnknownAdapter):
		return &apiError{status: http.StatusNotFound, typ: "invalid_request_error", param: "model", msg: err.Error()}
	case errors.Is(err, ErrBusy):
		return &apiError{status: http.StatusTooManyRequests, typ: "rate_limit_error", msg: err.Error()}
	case errors.Is(err, ErrClosed):
		return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", msg: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{status: http.StatusGatewayTimeout, typ: "timeout_error", msg: err.Error()}
	case errors.Is(err, ErrInvalidRequest):
		return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", msg: err.Error()}
	case errors.As(err, new(*AdapterError)):
		// A broken or misfit adapter is the caller's choice of model, not
		// a server failure.
		return &apiError{status: http.StatusUnprocessableEntity, typ: "invalid_request_error", param: "model", msg: err.Error()}
	}
	return &apiError{status: http.StatusInternalServerError, typ: "server_error", msg: err.Error()}
}

// stringList is a JSON string or array of strings.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = stringList{s}
		return nil
	}
	var v []string
	if err := json.Unmarshal(b, &v); err != nil {
		return errors.New("want a string or an array of strings")
	}
	*l = v
	return nil
}

// promptInput is a completion's prompt: a string, or its token ids, alone
// or in an array of one (OpenAI's batches of prompts, which the server does
// not take: a request is one prompt).
type promptInput struct {
	text  string
	ids   []int // the token ids if given as such
	count int   // prompts in the request
}

func (p *promptInput) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		p.count = 1
		return json.Unmarshal(b, &p.text)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want a string, an array of token ids, or an array of one of those")
	}
	var ids []int
	if err := json.Unmarshal(b, &ids); err == nil {
		p.ids, p.count = ids, 1
		return nil
	}
	p.count = len(list)
	if len(list) != 1 {
		return nil // refused by decode, naming the field
	}
	if err := json.Unmarshal(list[0], &p.text); err == nil {
		return nil
	}
	if err := json.Unmarshal(list[0], &p.ids); err != nil || len(p.ids) == 0 {
		return errors.New("want a string, an array of token ids, or an array of one of those")
	}
	return nil
}

// Caps of OpenAI's API on the alternatives at each position: logprobs
// (completions) and top_logprobs (chat).
const (
	maxCompletionLogprobs = 5
	maxChatLogprobs       = MaxTopLogprobs
)

// completionRequest is the body of /v1/completions and, with Messages, of
// /v1/chat/completions. Fields the server does not implement are refused
// when set to anything but their default, rather than ignored.
type completionRequest struct {
	Model         string          `json:"model"`
	Prompt        *promptInput    `json:"prompt"`
	Messages      []chat.Message  `json:"messages"`
	MaxTokens     *int            `json:"max_tokens"`
	MaxCompletion *int            `json:"max_completion_tokens"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	Seed          *int64          `json:"seed"`
	Stop          *stringList     `json:"stop"`
	Stream        bool            `json:"stream"`
	StreamOptions *streamOptions  `json:"stream_options"`
	N             *int            `json:"n"`
	Echo          bool            `json:"echo"`
	Logprobs      json.RawMessage `json:"logprobs"`     // completions: an integer; chat: a boolean
	TopLogprobs   *int            `json:"top_logprobs"` // chat
	BestOf        *int            `json:"best_of"`

	// Set by decode from the above.
	n         int
	logprobs  bool
	topK      int
	chatInput bool
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// decode reads and checks the body of a completion request.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, chat bool) (*completionRequest, *apiError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", msg: fmt.Sprintf("request body larger than %d bytes", s.opts.MaxBodyBytes)}
		}
		return nil, badRequest("", "reading the request body: %v", err)
	}
	var req completionRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, badRequest("", "request body is not valid JSON for this endpoint: %v", err)
	}
	switch {
	case req.Model == "":
		return nil, badRequest("model", "model is required: %q for the base model or an adapter's name", s.opts.BaseName)
	case !chat && (req.Prompt == nil || req.Prompt.count != 1):
		return nil, badRequest("prompt", "prompt must be one string or one array of token ids (batches of prompts are not supported; send one request each, or use n for several completions of one prompt)")
	case chat && len(req.Messages) == 0:
		return nil, badRequest("messages", "messages must hold at least one message")
	case req.N != nil && (*req.N < 1 || *req.N > s.opts.MaxChoices):
		return nil, badRequest("n", "n %d must be in [1, %d]", *req.N, s.opts.MaxChoices)
	case req.BestOf != nil && *req.BestOf != 1:
		return nil, badRequest("best_of", "best_of must be 1")
	case chat && req.Echo:
		return nil, badRequest("echo", "echo is only for /v1/completions")
	case !chat && req.TopLogprobs != nil:
		return nil, badRequest("top_logprobs", "top_logprobs is for /v1/chat/completions; /v1/completions takes the number in logprobs")
	case req.Temperature != nil && !(*req.Temperature >= 0 && *req.Temperature <= 2):
		return nil, badRequest("temperature", "temperature %v must be in [0, 2]", *req.Temperature)
	case req.TopP != nil && !(*req.TopP > 0 && *req.TopP <= 1):
		return nil, badRequest("top_p", "top_p %v must be in (0, 1]", *req.TopP)
	case req.Stop != nil && len(*req.Stop) > 4:
		return nil, badRequest("stop", "at most 4 stop strings, got %d", len(*req.Stop))
	}
	req.n, req.chatInput = 1, chat
	if req.N != nil {
		req.n = *req.N
	}
	if aerr := req.decodeLogprobs(chat); aerr != nil {
		return nil, aerr
	}
	if req.MaxTokens == nil {
		req.MaxTokens = req.MaxCompletion
	}
	if req.MaxTokens != nil && *req.MaxTokens == 0 && !req.Echo {
		return nil, badRequest("max_tokens", "max_tokens 0 is only for echo (scoring the prompt)")
	}
	if req.MaxTokens != nil && (*req.MaxTokens < 0 || *req.MaxTokens > s.opts.MaxTokens) {
		return nil, badRequest("max_tokens", "max_tokens %d must be in [1, %d] (0 with echo)", *req.MaxTokens, s.opts.MaxTokens)
	}
	if req.Stop != nil {
		for i, st := range *req.Stop {
			if st == "" {
				return nil, badRequest("stop", "stop string %d is empty", i)
			}
		}
	}
	return &req, nil
}

// decodeLogprobs reads logprobs and top_logprobs: on /v1/completions
// logprobs is the number of alternatives (0 for the chosen token's alone),
// on /v1/chat/completions a boolean with top_logprobs the number.
func (req *completionRequest) decodeLogprobs(chat bool) *apiError {
	raw := bytes.TrimSpace(req.Logprobs)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) || bytes.Equal(raw, []byte("false")) {
		if req.TopLogprobs != nil && *req.TopLogprobs != 0 {
			return badRequest("top_logprobs", "top_logprobs needs logprobs: true")
		}
		return nil
	}
	if chat {
		if !bytes.Equal(raw, []byte("true")) {
			return badRequest("logprobs", "logprobs must be true or false on /v1/chat/completions (the number of alternatives goes in top_logprobs)")
		}
		req.logprobs = true
		if req.TopLogprobs != nil {
			req.topK = *req.TopLogprobs
		}
		if req.topK < 0 || req.topK > maxChatLogprobs {
			return badRequest("top_logprobs", "top_logprobs %d must be in [0, %d]", req.topK, maxChatLogprobs)
		}
		return nil
	}
	var k int
	if err := json.Unmarshal(raw, &k); err != nil {
		return badRequest("logprobs", "logprobs must be an integer on /v1/completions: the number of most likely tokens to return at each position")
	}
	if k < 0 || k > maxCompletionLogprobs {
		return badRequest("logprobs", "logprobs %d must be in [0, %d]", k, maxCompletionLogprobs)
	}
	req.logprobs, req.topK = true, k
	return nil
}

// engineRequest turns a checked request with its prompt text into an engine
// request. A prompt given as token ids is run as it is (no BOS added).
func (s *Server) engineRequest(req *completionRequest, prompt promptInput) (Request, *apiError) {
	chat := req.chatInput
	tok := s.e.Tokenizer()
	var ids []int
	if prompt.ids != nil {
		ids = prompt.ids
		vocab := s.e.m.Weights().Config.VocabSize
		for i, t := range ids {
			if t < 0 || t >= vocab {
				return Request{}, badRequest("prompt", "prompt token %d (index %d) is outside the vocabulary [0, %d)", t, i, vocab)
			}
		}
	} else {
		ids = tok.Encode(prompt.text)
		if len(ids) == 0 && chat {
			return Request{}, badRequest("messages", "the rendered conversation is empty")
		}
		if bos := tok.BOS(); bos >= 0 && !chat {
			ids = append([]int{bos}, ids...)
		}
	}
	if len(ids) == 0 {
		return Request{}, badRequest("prompt", "the prompt is empty")
	}
	if len(ids) > s.opts.MaxPromptTokens {
		return Request{}, badRequest("prompt", "the prompt has %d tokens, more than the %d allowed", len(ids), s.opts.MaxPromptTokens)
	}
	if len(ids) >= s.e.MaxContext() {
		return Request{}, badRequest("prompt", "the prompt has %d tokens; the model's context holds %d, prompt and completion together", len(ids), s.e.MaxContext())
	}
	er := Request{Prompt: ids, Temperature: 1, TopP: 1, MaxTokens: 16}
	if req.Model != s.opts.BaseName {
		er.Adapter = req.Model
	}
	if req.MaxTokens != nil {
		er.MaxTokens = *req.MaxTokens
		er.PromptOnly = er.MaxTokens == 0 // with echo: decode checked
	}
	if req.Temperature != nil {
		er.Temperature = *req.Temperature
	}
	if req.TopP != nil {
		er.TopP = *req.TopP
	}
	if req.Seed != nil {
		er.Seed = uint64(*req.Seed)
	} else {
		var b [8]byte
		rand.Read(b[:])
		er.Seed = binary.LittleEndian.Uint64(b[:])
	}
	if req.Stop != nil {
		er.Stop = *req.Stop
	}
	er.Logprobs, er.TopLogprobs = req.logprobs, req.topK
	er.PromptLogprobs = req.logprobs && req.Echo
	return er, nil
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	req, aerr := s.decode(w, r, false)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	s.run(w, r, req, *req.Prompt)
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	if s.opts.Chat == nil {
		writeError(w, http.StatusNotFound, "invalid_request_error", "this model has no chat template; use /v1/completions")
		return
	}
	req, aerr := s.decode(w, r, true)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	prompt, err := s.opts.Chat.Render(req.Messages, chat.RenderOptions{AddGenerationPrompt: true})
	if err != nil {
		writeAPIError(w, badRequest("messages", "%v", err))
		return
	}
	s.run(w, r, req, promptInput{text: prompt})
}

// run submits the request's n choices, each an engine request of its own
// seeded with ChoiceSeed, and writes the response, streamed or whole.
func (s *Server) run(w http.ResponseWriter, r *http.Request, req *completionRequest, prompt promptInput) {
	chat := req.chatInput
	if !s.acquire(req.n) {
		writeError(w, http.StatusTooManyRequests, "rate_limit_error", fmt.Sprintf("more than %d completions in progress; retry later", s.opts.MaxConcurrent))
		return
	}
	defer s.release(req.n)
	er, aerr := s.engineRequest(req, prompt)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
	defer cancel() // also ends the choices still running when run returns early
	streams := make([]*Stream, req.n)
	for i := range streams {
		ri := er
		ri.Seed = ChoiceSeed(er.Seed, i)
		stream, err := s.e.Submit(ctx, ri)
		if err != nil {
			writeAPIError(w, toAPIError(err))
			return
		}
		streams[i] = stream
	}
	if v := streams[0].AdapterVersion; v != "" {
		w.Header().Set(AdapterVersionHeader, v)
	}
	echo := ""
	if req.Echo {
		echo = prompt.text
		if prompt.ids != nil {
			echo = s.e.Tokenizer().Decode(prompt.ids)
		}
	}
	id := newID(chat)
	created := time.Now().Unix()
	obj := "text_completion"
	if chat {
		obj = "chat.completion"
	}
	if !req.Stream {
		choices := make([]any, len(streams))
		completion := 0
		for i, stream := range streams {
			res := stream.Result()
			if res.Err != nil {
				writeAPIError(w, toAPIError(res.Err))
				return
			}
			choices[i] = s.choice(i, req, er.Prompt, echo, res)
			completion += res.CompletionTokens
			s.log.Debug("completion", "model", req.Model, "choice", i, "prompt_tokens", res.PromptTokens, "completion_tokens", res.CompletionTokens, "queued", res.Queued, "ttft", res.FirstToken)
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "object": obj, "created": created, "model": req.Model,
			"choices": choices, "usage": usage(len(er.Prompt), completion),
		})
		return
	}
	if chat {
		obj = "chat.completion.chunk"
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	chunk := func(i int, text string, logprobs, finish any, first bool) map[string]any {
		c := map[string]any{"index": i, "finish_reason": finish, "logprobs": logprobs}
		if chat {
			delta := map[string]any{}
			if first {
				delta["role"] = "assistant"
			}
			if text != "" || first {
				delta["content"] = text
			}
			c["delta"] = delta
		} else {
			c["text"] = text
		}
		return map[string]any{"id": id, "object": obj, "created": created, "model": req.Model, "choices": []any{c}}
	}
	renderers := make([]*lpRenderer, len(streams))
	for i := range streams {
		renderers[i] = s.newRenderer(req, er.Prompt, echo)
		switch {
		case chat:
			send(chunk(i, "", nil, nil, true))
		case req.Echo && !er.PromptLogprobs:
			send(chunk(i, echo, nil, nil, false))
		}
	}
	// The choices' chunks, merged in the order they come. Every stream
	// ends (its context's end ends it), so the loop below gets every done;
	// quit frees the forwarders when run returns before.
	type event struct {
		i    int
		c    Chunk
		done bool
	}
	events, quit := make(chan event), make(chan struct{})
	defer close(quit)
	for i, stream := range streams {
		go func() {
			for c := range stream.C {
				select {
				case events <- event{i: i, c: c}:
				case <-quit:
					return
				}
			}
			select {
			case events <- event{i: i, done: true}:
			case <-quit:
			}
		}()
	}
	completion := 0
	for left := len(streams); left > 0; {
		ev := <-events
		lr := renderers[ev.i]
		switch {
		case ev.done:
			left--
			res := streams[ev.i].Result()
			if res.Err != nil {
				// The status line is gone; an error event is all a client can get.
				ae := toAPIError(res.Err)
				send(map[string]any{"error": map[string]any{"message": ae.msg, "type": ae.typ, "code": nil, "param": nil}})
				return
			}
			completion += res.CompletionTokens
			send(chunk(ev.i, "", nil, finishReason(res.Reason), false))
		case ev.c.PromptLogprobs != nil:
			send(chunk(ev.i, echo, lr.promptLogprobs(er.Prompt, ev.c.PromptLogprobs), nil, false))
		default:
			var lp any
			if req.logprobs {
				lp = lr.logprobs(ev.c.Logprobs)
			}
			send(chunk(ev.i, ev.c.Text, lp, nil, false))
		}
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		send(map[string]any{"id": id, "object": obj, "created": created, "model": req.Model, "choices": []any{}, "usage": usage(len(er.Prompt), completion)})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}

// choice is choice i of a whole (not streamed) response.
func (s *Server) choice(i int, req *completionRequest, prompt []int, echo string, res Result) map[string]any {
	c := map[string]any{"index": i, "finish_reason": finishReason(res.Reason), "logprobs": nil}
	if req.chatInput {
		c["message"] = map[string]any{"role": "assistant", "content": res.Text}
	} else {
		c["text"] = echo + res.Text
	}
	if !req.logprobs {
		return c
	}
	lr := s.newRenderer(req, prompt, echo)
	if req.chatInput {
		c["logprobs"] = lr.logprobs(res.Logprobs)
		return c
	}
	lp := new(completionLogprobs)
	if req.Echo {
		lp = lr.promptLogprobs(prompt, res.PromptLogprobs)
	}
	lr.addCompletion(lp, res.Logprobs)
	c["logprobs"] = lp
	return c
}

// acquire takes n of the places of MaxConcurrent, or none if there are
// not n free.
func (s *Server) acquire(n int) bool {
	for k := range n {
		select {
		case s.sem <- struct{}{}:
		default:
			s.release(k)
			return false
		}
	}
	return true
}

func (s *Server) release(n int) {
	for range n {
		<-s.sem
	}
}

// ChoiceSeed returns the seed of choice i of a request seeded with seed:
// seed itself for choice 0 (so n = 1 is the request alone), and for the
// others seed and i mixed by SplitMix64's finalizer, so that the choices'
// random streams are unrelated. Choice i of a request is the text of the
// same request with n = 1 and seed ChoiceSeed(seed, i).
func ChoiceSeed(seed uint64, i int) uint64 {
	if i == 0 {
		return seed
	}
	z := seed + uint64(i)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// usage is the usage of a response: the prompt counted once, the
// completion tokens of every choice.
func usage(prompt, completion int) map[string]int {
	return map[string]int{
		"prompt_tokens": prompt, "completion_tokens": completion,
		"total_tokens": prompt + completion,
	}
}

// finishReason is OpenAI's name for why generation ended.
func finishReason(r infer.StopReason) string {
	if r == infer.StopLength {
		return "length"
	}
	return "stop"
}

func newID(chat bool) string {
	var b [12]byte
	rand.Read(b[:])
	prefix := "cmpl-"
	if chat {
		prefix = "chatcmpl-"
	}
	return fmt.Sprintf("%s%x", prefix, b)
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	names := []string{s.opts.BaseName}
	if st := s.e.Store(); st != nil {
		more, err := st.Names(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, "server_error", err.Error())
			return
		}
		names = append(names, more...)
	}
	data := make([]any, 0, len(names))
	for i, n := range names {
		owner := "adapter"
		if i == 0 {
			owner = "base"
		}
		data = append(data, map[string]any{"id": n, "object": "model", "created": 0, "owned_by": owner})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// model answers OpenAI's retrieve-model request: the base or an adapter of
// the store, by name.
func (s *Server) model(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("model")
	owner := "base"
	if name != s.opts.BaseName {
		owner = "adapter"
		var names []string
		if st := s.e.Store(); st != nil {
			var err error
			if names, err = st.Names(r.Context()); err != nil {
				writeError(w, http.StatusInternalServerError, "server_error", err.Error())
				return
			}
		}
		if _, found := slices.BinarySearch(names, name); !found {
			writeAPIError(w, &apiError{status: http.StatusNotFound, typ: "invalid_request_error", param: "model", msg: fmt.Sprintf("model %q does not exist: not the base (%q) nor an adapter of this server", name, s.opts.BaseName)})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": name, "object": "model", "created": 0, "owned_by": owner})
}

func (s *Server) adapters(w http.ResponseWriter, _ *http.Request) {
	st := s.e.Store()
	if st == nil {
		writeJSON(w, http.StatusOK, map[string]any{"adapters": []any{}})
		return
	}
	list := make([]any, 0)
	for _, c := range st.Cached() {
		list = append(list, map[string]any{"name": c.Name, "version": c.Version, "bytes": c.Bytes, "in_use": c.InUse, "pinned": c.Pinned})
	}
	writeJSON(w, http.StatusOK, map[string]any{"adapters": list, "bytes": st.Used()})
}

func (s *Server) loadAdapter(w http.ResponseWriter, r *http.Request) {
	st := s.e.Store()
	name := r.PathValue("name")
	if st == nil {
		writeError(w, http.StatusNotFound, "invalid_request_error", "this server has no adapter store")
		return
	}
	pin := r.URL.Query().Get("pin") == "true"
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
	defer cancel()
	err := st.Load(ctx, name)
	if err == nil && pin {
		err = st.Pin(ctx, name)
	}
	if err != nil {
		writeAPIError(w, toAPIError(err))
		return
	}
	s.log.Info("adapter loaded", "adapter", name, "pinned", pin)
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "loaded": true, "pinned": pin})
}

func (s *Server) unloadAdapter(w http.ResponseWriter, r *http.Request) {
	st := s.e.Store()
	name := r.PathValue("name")
	if st == nil || !st.Unload(name) {
		writeError(w, http.StatusNotFound, "invalid_request_error", fmt.Sprintf("adapter %q is not loaded", name))
		return
	}
	s.log.Info("adapter unloaded", "adapter", name)
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "loaded": false})
}

func isCancel(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
