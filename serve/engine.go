package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/golora/golora/model/infer"
	"github.com/golora/golora/model/tokenizer"
)

// EngineOptions configures an Engine. The zero value of each field is the
// default it documents.
type EngineOptions struct {
	// MaxRunning is the most requests in the running batch; 32 when zero.
	MaxRunning int
	// MaxStepTokens is the most tokens one step runs, decoded tokens and
	// prompt chunks together; 256 when zero. It bounds how long a long
	// prompt can hold up the others' next token.
	MaxStepTokens int
	// PrefillChunk is the most prompt tokens of one request in one step;
	// 64 when zero.
	PrefillChunk int
	// KVTokens is the KV-cache budget in positions, summed over running
	// requests, each counted for its prompt plus its maximum new tokens;
	// MaxRunning × the model's context when zero. Requests that do not fit
	// wait in the queue.
	KVTokens int
	// MaxQueue is the most requests waiting to run; Submit refuses more
	// with ErrBusy. 1024 when zero.
	MaxQueue int
	// Observer, if not nil, is told about steps and requests (for metrics).
	Observer Observer
}

// Observer receives the engine's measurements. Its methods are called from
// the engine's goroutine and must return quickly.
type Observer interface {
	// Step reports a forward step over rows requests and tokens tokens.
	Step(rows, tokens int, d time.Duration)
	// Admitted reports a request entering the batch after waiting d.
	Admitted(d time.Duration)
	// FirstToken reports the time from Submit to a request's first token.
	FirstToken(d time.Duration)
	// Finished reports a request's end with its token counts.
	Finished(adapter string, promptTokens, completionTokens int, reason infer.StopReason, err error)
}

// Errors Submit returns for requests it does not take.
var (
	ErrBusy           = errors.New("serve: too many requests waiting")
	ErrClosed         = errors.New("serve: engine is shut down")
	ErrInvalidRequest = errors.New("serve: invalid request")
)

// invalid returns an error wrapping ErrInvalidRequest.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// Request is one completion to run.
type Request struct {
	// Adapter names the adapter in the Store; empty for the base model.
	Adapter string
	// Prompt is the prompt's token ids, BOS included if the model expects
	// it.
	Prompt []int
	// MaxTokens is the most tokens to generate; zero means until EOS or
	// the model's context is full.
	MaxTokens int
	// Temperature, TopP choose the next token (infer.SamplerOptions);
	// temperature 0 is greedy. Seed seeds the request's own random source,
	// so a seeded request gives the same text whatever shares its batch.
	Temperature, TopP float64
	Seed              uint64
	// Stop ends the generation at the first of these strings, which is
	// left out of the text.
	Stop []string
	// Logprobs asks for the log-probability of each generated token
	// (TokenLogprob), PromptLogprobs for that of each prompt token after
	// the first (scoring the prompt: its logits at every position are
	// computed, which a request without it does not pay for); both with
	// the TopLogprobs most likely tokens at each position, at most
	// MaxTopLogprobs.
	Logprobs, PromptLogprobs bool
	TopLogprobs              int
	// PromptOnly runs the prompt and generates nothing (MaxTokens is
	// ignored): scoring a text with PromptLogprobs. The request ends with
	// StopLength.
	PromptOnly bool
}

// Chunk is a piece of generated text as it is streamed.
type Chunk struct {
	Text   string
	Tokens int // tokens generated so far
	// Logprobs holds, if the request asked, the generated tokens since the
	// last chunk: a token's text may come in a later chunk (an incomplete
	// UTF-8 character, a possible stop string), or in none (a stop string).
	Logprobs []TokenLogprob
	// PromptLogprobs holds, in a chunk of its own sent before the first
	// token's, the prompt's logprobs if the request asked.
	PromptLogprobs []TokenLogprob
}

// Result is the outcome of a request.
type Result struct {
	Text             string
	PromptTokens     int
	CompletionTokens int
	Reason           infer.StopReason // empty on error
	Err              error            // why the request failed (its context's error when cancelled)
	Queued           time.Duration    // from Submit to entering the batch
	FirstToken       time.Duration    // from Submit to the first token
	// Logprobs holds, if the request asked, one entry per generated token
	// (CompletionTokens; an EOS that ends the text is not one),
	// PromptLogprobs one per prompt token but the first, which nothing
	// predicts.
	Logprobs, PromptLogprobs []TokenLogprob
}

// Stream delivers a request's text as it is generated.
type Stream struct {
	// C receives the text as it comes and is closed when the request ends;
	// it never blocks the engine (it holds room for every token).
	C <-chan Chunk
	// AdapterVersion is the version of the request's adapter, when its
	// source is a VersionedSource.
	AdapterVersion string

	c      chan Chunk
	done   chan struct{}
	result Result
}

// Result waits for the request to end and returns its outcome.
func (s *Stream) Result() Result {
	<-s.done
	return s.result
}

// Engine runs requests with continuous batching: requests join the batch
// and leave it between steps, prompts are run in chunks, and each step is
// one Model.Step over every running request whatever its adapter.
type Engine struct {
	m     Model
	store *Store
	tok   tokenizer.Tokenizer
	opts  EngineOptions
	obs   Observer

	mu      sync.Mutex
	queue   []*seq
	closed  bool
	wake    chan struct{} // buffered 1: something to do
	stopped chan struct{} // closed when the loop has ended
	abort   chan struct{} // closed by Shutdown when its context ends: cancel everything
	kvUsed  int           // touched only by the loop
	running []*seq        // touched only by the loop
	// Touched only by the loop: the logits buffers of finished
	// requests, kept for the next ones (at most MaxRunning; held weakly,
	// as BatchedModel holds its closed caches), and the timer of idle.
	freeBuffers []weak.Pointer[requestBuffers]
	trimTimer   *time.Timer
	drawing     []*seq // touched only by the loop: the draws of a step spread over drawers (draw)
	// drawers draw every request's tokens and their logprobs: one per
	// goroutine of draw, instead of a sampler per running request. Touched
	// only by the loop and draw's workers; the loop uses the first.
	drawers []drawer
}

// drawer is the scratch of a goroutine of draw: a sampler, reset to each
// request's options (its own random source) before its draw, with a
// scratch of 24 bytes per vocabulary token, and the scratch of logprobs.
type drawer struct {
	sampler   infer.Sampler
	lpScratch []float32 // [VocabSize]
}

// logprob returns the logprob of token id under logits with the k most
// likely tokens (tokenLogprob).
func (d *drawer) logprob(logits []float32, id, k int) TokenLogprob {
	if len(d.lpScratch) < len(logits) {
		d.lpScratch = make([]float32, len(logits))
	}
	return tokenLogprob(d.lpScratch[:len(logits)], logits, id, k)
}

// seq is the engine's state of one request.
type seq struct {
	ctx      context.Context
	stopWake func() bool
	req      Request
	maxLen   int
	handle   *Handle // nil for the base model
	adapter  infer.Adapter
	stream   *Stream
	submit   time.Time

	kv       Sequence
	buf      *requestBuffers // its logits, from admission to finish
	fed      int             // prompt tokens run
	chunk    int             // prompt tokens in the step being planned
	token    [1]int          // the row of a decode step
	next     int             // token to run next once the prompt is done, −1 before
	drawn    int             // the token drawn from the step's logits (draw)
	drawnLP  TokenLogprob    // its logprob, if the request asks
	drawErr  error
	sampling infer.SamplerOptions
	dec      *tokenizer.StreamDecoder
	out      infer.StopText
	produced int

	// Only for requests that ask for logprobs: the prompt chunk's logits at
	// every token, the logprobs so far and those not yet in a chunk.
	all            []float32
	lps, promptLPs []TokenLogprob
	unsent         int // entries at the end of lps not yet in a chunk
}

// NewEngine starts an engine running m, with adapters from store (nil when
// only the base is served) and tok to decode the output.
func NewEngine(m Model, store *Store, tok tokenizer.Tokenizer, opts EngineOptions) (*Engine, error) {
	if m == nil || tok == nil {
		return nil, errors.New("serve: NewEngine: model or tokenizer is nil")
	}
	c := m.Weights().Config
	if opts.MaxRunning <= 0 {
		opts.MaxRunning = 32
	}
	if opts.MaxStepTokens <= 0 {
		opts.MaxStepTokens = 256
	}
	if opts.PrefillChunk <= 0 {
		opts.PrefillChunk = 64
	}
	if opts.KVTokens <= 0 {
		opts.KVTokens = opts.MaxRunning * c.MaxSeqLen
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 1024
	}
	e := &Engine{
		m: m, store: store, tok: tok, opts: opts, obs: opts.Observer,
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		abort:   make(chan struct{}),
	}
	go e.loop()
	return e, nil
}

// Tokenizer returns the tokenizer of the model served.
func (e *Engine) Tokenizer() tokenizer.Tokenizer { return e.tok }

// Store returns the adapter store, nil when only the base is served.
func (e *Engine) Store() *Store { return e.store }

// MaxContext returns the most positions a request can use, prompt and
// generated tokens together.
func (e *Engine) MaxContext() int {
	limit := min(e.m.Weights().Config.MaxSeqLen, e.opts.KVTokens)
	if m, ok := e.m.(interface{ MaxLen() int }); ok {
		limit = min(limit, m.MaxLen())
	}
	return limit
}

// Submit checks req, takes a reference to its adapter (loading it if
// needed) and queues it. The request runs until it ends or ctx is done;
// cancelling ctx frees its place in the batch at the next step.
func (e *Engine) Submit(ctx context.Context, req Request) (*Stream, error) {
	maxLen, err := e.check(&req)
	if err != nil {
		return nil, err
	}
	s := &seq{ctx: ctx, req: req, maxLen: maxLen, next: -1, submit: time.Now()}
	s.sampling = infer.SamplerOptions{
		Temperature: req.Temperature, TopP: req.TopP,
		Rand: rand.New(rand.NewPCG(req.Seed, 0x5eed)),
	}
	// Checked now; the engine's sampler takes them at each token.
	var check infer.Sampler
	if err := check.Reset(s.sampling); err != nil {
		return nil, err
	}
	if req.Adapter != "" {
		if e.store == nil {
			return nil, fmt.Errorf("%w %q: this server has no adapters", ErrUnknownAdapter, req.Adapter)
		}
		if s.handle, err = e.store.Acquire(ctx, req.Adapter); err != nil {
			return nil, err
		}
		s.adapter = s.handle.Adapter()
	}
	// A chunk per generated token at most, the last text and the prompt's
	// logprobs.
	ch := make(chan Chunk, maxLen-len(req.Prompt)+2)
	s.stream = &Stream{C: ch, c: ch, done: make(chan struct{})}
	if s.handle != nil {
		s.stream.AdapterVersion = s.handle.Adapter().Version()
	}
	s.out.Stops = req.Stop
	s.stopWake = context.AfterFunc(ctx, e.poke)
	e.mu.Lock()
	switch {
	case e.closed:
		err = ErrClosed
	case len(e.queue) >= e.opts.MaxQueue:
		err = ErrBusy
	default:
		e.queue = append(e.queue, s)
	}
	e.mu.Unlock()
	if err != nil {
		s.release()
		return nil, err
	}
	e.poke()
	return s.stream, nil
}

// check validates req and returns the KV positions it needs, setting
// MaxTokens when zero.
func (e *Engine) check(req *Request) (int, error) {
	c := e.m.Weights().Config
	limit := e.MaxContext()
	switch {
	case len(req.Prompt) == 0:
		return 0, invalid("empty prompt")
	case len(req.Prompt) >= limit:
		return 0, invalid("the prompt has %d tokens; the context holds %d positions, prompt and completion together", len(req.Prompt), limit)
	case req.MaxTokens < 0:
		return 0, invalid("max tokens %d is negative", req.MaxTokens)
	}
	for i, t := range req.Prompt {
		if t < 0 || t >= c.VocabSize {
			return 0, invalid("prompt token %d (index %d) is outside the vocabulary [0, %d)", t, i, c.VocabSize)
		}
	}
	for i, s := range req.Stop {
		if s == "" {
			return 0, invalid("stop string %d is empty", i)
		}
	}
	if req.TopLogprobs < 0 || req.TopLogprobs > MaxTopLogprobs {
		return 0, invalid("top logprobs %d must be in [0, %d]", req.TopLogprobs, MaxTopLogprobs)
	}
	if req.PromptOnly {
		req.MaxTokens = 0
		return len(req.Prompt), nil
	}
	if req.MaxTokens == 0 || len(req.Prompt)+req.MaxTokens > limit {
		req.MaxTokens = limit - len(req.Prompt)
	}
	return len(req.Prompt) + req.MaxTokens, nil
}

// poke wakes the loop.
func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Shutdown stops taking requests and waits for those queued or running to
// finish; when ctx ends first, it cancels them and waits for the loop to
// stop.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
	}
	e.mu.Unlock()
	e.poke()
	select {
	case <-e.stopped:
		return nil
	case <-ctx.Done():
	}
	select {
	case <-e.abort:
	default:
		close(e.abort)
	}
	e.poke()
	<-e.stopped
	return ctx.Err()
}

// loop is the scheduler: between steps it drops cancelled requests, admits
// queued ones while the batch and the KV budget have room, then runs one step
// of decoded tokens first and prompt chunks with the tokens left.
func (e *Engine) loop() {
	defer close(e.stopped)
	var rows []Row
	var owners []*seq
	trimmed := false // what is kept for reuse was freed since the last step
	for {
		aborted := false
		select {
		case <-e.abort:
			aborted = true
		default:
		}
		e.mu.Lock()
		closed := e.closed
		if aborted {
			for _, s := range e.queue {
				e.finish(s, "", fmt.Errorf("serve: shut down: %w", context.Canceled))
			}
			e.queue = nil
		}
		e.mu.Unlock()
		e.running = slices.DeleteFunc(e.running, func(s *seq) bool {
			if err := s.ctx.Err(); err != nil || aborted {
				if err == nil {
					err = fmt.Errorf("serve: shut down: %w", context.Canceled)
				}
				e.finish(s, "", err)
				return true
			}
			return false
		})
		burst := len(e.running) == 0
		e.admit()
		if burst && len(e.running) > 0 {
			e.gather()
		}
		if len(e.running) == 0 {
			e.mu.Lock()
			idle := len(e.queue) == 0
			e.mu.Unlock()
			if closed && idle {
				return
			}
			if idle && !trimmed {
				trimmed = e.idle()
				continue
			}
			<-e.wake
			continue
		}
		trimmed = false
		rows, owners = e.plan(rows[:0], owners[:0])
		start := time.Now()
		err := e.m.Step(rows)
		if e.obs != nil {
			n := 0
			for _, r := range rows {
				n += len(r.Tokens)
			}
			e.obs.Step(len(rows), n, time.Since(start))
		}
		if err != nil {
			for _, s := range owners {
				e.finish(s, "", err)
			}
			e.running = slices.DeleteFunc(e.running, func(s *seq) bool { return slices.Contains(owners, s) })
			continue
		}
		e.draw(rows, owners)
		for i, s := range owners {
			if rows[i].AllLogits != nil && !e.scorePrompt(s, len(rows[i].Tokens)) {
				continue
			}
			if rows[i].Logits != nil {
				e.emit(s)
			}
		}
		// The slices are reused; finished requests must not stay reachable
		// from them.
		clear(rows)
		clear(owners)
		e.running = slices.DeleteFunc(e.running, func(s *seq) bool { return s.kv == nil })
	}
}

// requestBuffers is a request's logits, [VocabSize]: reused by the next
// request once it ends.
type requestBuffers struct {
	logits []float32
}

// idleTrimDelay is how long the engine waits with nothing to run before it
// frees what is kept for reuse (the model's closed KV caches, the logits
// buffers): a burst of requests right after another (clients that send
// their next request as soon as the last one is answered) reuses them
// instead of allocating, zeroing and faulting in megabytes of fresh memory
// (on 32 streams of the stories15M shape, a tenth of the CPU time). Both
// are held weakly, so a garbage collection in the meantime frees them too.
const idleTrimDelay = 500 * time.Millisecond

// idle waits, with nothing to run, for a wake-up or idleTrimDelay, whichever
// comes first; in the second case it frees what is kept for reuse and
// reports true.
func (e *Engine) idle() bool {
	if e.trimTimer == nil {
		e.trimTimer = time.NewTimer(idleTrimDelay)
	} else {
		e.trimTimer.Reset(idleTrimDelay)
	}
	select {
	case <-e.wake:
		e.trimTimer.Stop()
		return false
	case <-e.trimTimer.C:
	}
	clear(e.freeBuffers)
	e.freeBuffers = e.freeBuffers[:0]
	e.drawers = nil // their scratch
	if t, ok := e.m.(interface{ Trim() }); ok {
		t.Trim() // last: BatchedModel's returns the memory freed here too
	}
	return true
}

// Requests of a burst (clients sending at once) arrive a few microseconds
// apart. An engine that starts its first step at the first arrival runs
// that step for a few of them and the rest one step behind, so the burst
// takes one step more, a step of a few rows for the whole model's cost.
// So when the batch was empty, the engine waits for the burst: while
// requests keep arriving less than burstGap apart, for up to burstWindow.
// A lone request waits one burstGap.
const (
	burstGap    = 100 * time.Microsecond
	burstWindow = 2 * time.Millisecond
)

// gather admits the rest of a burst whose first requests admit has just
// taken into an empty batch, while the batch has room. It stops as soon as
// a request waits that admit cannot take (the KV budget is spent): waiting
// longer would only delay the step.
func (e *Engine) gather() {
	deadline := time.Now().Add(burstWindow)
	for len(e.running) < e.opts.MaxRunning && time.Now().Before(deadline) {
		time.Sleep(burstGap)
		e.mu.Lock()
		waiting := len(e.queue)
		e.mu.Unlock()
		if waiting == 0 {
			return
		}
		running := len(e.running)
		e.admit()
		if len(e.running) == running {
			return
		}
	}
}

// admit moves queued requests into the batch in order while there is room;
// cancelled ones are dropped.
func (e *Engine) admit() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.queue) > 0 {
		s := e.queue[0]
		if err := s.ctx.Err(); err != nil {
			e.dequeue()
			e.finish(s, "", err)
			continue
		}
		if len(e.running) >= e.opts.MaxRunning || e.kvUsed+s.maxLen > e.opts.KVTokens {
			return
		}
		e.dequeue()
		kv, err := e.m.NewSequence(s.maxLen)
		if err != nil {
			e.finish(s, "", err)
			continue
		}
		s.kv = kv
		e.kvUsed += s.maxLen
		for k := len(e.freeBuffers); k > 0 && s.buf == nil; k-- {
			s.buf = e.freeBuffers[k-1].Value()
			e.freeBuffers = e.freeBuffers[:k-1]
		}
		if s.buf == nil {
			s.buf = &requestBuffers{logits: make([]float32, e.m.Weights().Config.VocabSize)}
		}
		s.stream.result.Queued = time.Since(s.submit)
		if e.obs != nil {
			e.obs.Admitted(s.stream.result.Queued)
		}
		e.running = append(e.running, s)
	}
}

// dequeue drops the first queued request. Its slot is cleared: the queue's
// array would otherwise keep a finished request (its prompt, stream and
// result) alive until the array is reallocated.
// e.mu is held.
func (e *Engine) dequeue() {
	e.queue[0] = nil
	e.queue = e.queue[1:]
}

// plan lays out the next step: one row per decoding request, then prompt
// chunks in order of arrival with the step's remaining tokens. Rows are
// grouped by adapter so that a batched model finds each group together.
func (e *Engine) plan(rows []Row, owners []*seq) ([]Row, []*seq) {
	budget := e.opts.MaxStepTokens
	for _, s := range e.running {
		if s.next >= 0 && budget > 0 {
			owners = append(owners, s)
			budget--
		}
	}
	for _, s := range e.running {
		if s.next < 0 && budget > 0 {
			s.chunk = min(e.opts.PrefillChunk, len(s.req.Prompt)-s.fed, budget)
			budget -= s.chunk
			owners = append(owners, s)
		}
	}
	slices.SortStableFunc(owners, func(a, b *seq) int { return cmp.Compare(a.req.Adapter, b.req.Adapter) })
	for _, s := range owners {
		r := Row{Seq: s.kv, Adapter: s.adapter}
		if s.next >= 0 {
			s.token[0] = s.next
			r.Tokens = s.token[:]
			r.Logits = s.buf.logits
		} else {
			r.Tokens = s.req.Prompt[s.fed : s.fed+s.chunk]
			s.fed += s.chunk
			if s.fed == len(s.req.Prompt) {
				r.Logits = s.buf.logits
			}
			if s.req.PromptLogprobs {
				r.AllLogits = s.allLogits(len(r.Tokens) * e.m.Weights().Config.VocabSize)
				r.AllLogits[0] = float32(math.NaN()) // a Model that does not write AllLogits leaves it
			}
		}
		rows = append(rows, r)
	}
	return rows, owners
}

// draw samples the next token of every request whose row has logits, with
// its logprob if the request asks. A draw at a temperature takes an
// exponential per token of the vocabulary, and a logprob a pass over it (a
// few tenths of a millisecond on 32,000: more than a 32-row step of the
// stories15M shape spends on a row), so those draws are spread over
// GOMAXPROCS goroutines, each with a drawer of its own, taking the next
// request not yet drawn; a greedy draw, an argmax, runs here. Each request
// has its own random source, so what it draws does not depend on the
// goroutine or on the other requests.
//
// A model with goroutines of its own (parallelModel: BatchedModel) runs
// all the draws on them, greedy ones too, once there are greedySplit: its
// helpers are awake after the step, and 32 argmaxes of 32,000 logits, read
// from memory after the head wrote them, take about 0.2 ms on one core,
// 4% of a 32-row step of the stories15M shape.
func (e *Engine) draw(rows []Row, owners []*seq) {
	workers := runtime.GOMAXPROCS(0)
	pm, _ := e.m.(parallelModel)
	if pm != nil {
		workers = max(workers, pm.Workers())
	}
	if len(e.drawers) < workers {
		e.drawers = append(e.drawers, make([]drawer, workers-len(e.drawers))...)
	}
	todo := e.drawing[:0]
	for i, s := range owners {
		if rows[i].Logits != nil && !s.req.PromptOnly {
			todo = append(todo, s)
		}
	}
	e.drawing = todo
	defer clear(todo) // finished requests must not stay reachable
	if pm != nil && len(todo) >= greedySplit {
		pm.Parallel(len(todo), func(w, i int) { todo[i].draw(&e.drawers[w]) })
		return
	}
	heavy := todo[:0] // the draws at a temperature or with a logprob, in place
	for _, s := range todo {
		if s.sampling.Temperature == 0 && !s.req.Logprobs {
			s.draw(&e.drawers[0])
		} else {
			heavy = append(heavy, s)
		}
	}
	todo = heavy
	workers = min(len(todo), workers)
	if workers <= 1 {
		for _, s := range todo {
			s.draw(&e.drawers[0])
		}
		return
	}
	var next atomic.Int64
	work := func(d *drawer) {
		for i := next.Add(1) - 1; i < int64(len(todo)); i = next.Add(1) - 1 {
			todo[i].draw(d)
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Go(func() { work(&e.drawers[w]) })
	}
	work(&e.drawers[0])
	wg.Wait()
}

// parallelModel is a Model that lends its goroutines to the engine
// between steps (BatchedModel).
type parallelModel interface {
	// Workers returns the number of goroutines Parallel runs fn on.
	Workers() int
	// Parallel calls fn(worker, i) for i in [0, n), worker in
	// [0, Workers()), and returns when all have returned.
	Parallel(n int, fn func(worker, i int))
}

// greedySplit is the fewest draws that draw runs on a parallelModel's
// goroutines.
const greedySplit = 8

// draw samples s's next token from its logits into drawn, and its logprob
// into drawnLP if s asks, or sets drawErr, with d's sampler reset to s's
// options.
func (s *seq) draw(d *drawer) {
	if s.drawErr = d.sampler.Reset(s.sampling); s.drawErr != nil { // Submit checked the options
		return
	}
	s.drawn, s.drawErr = d.sampler.Sample(s.buf.logits)
	if s.drawErr == nil && s.req.Logprobs {
		s.drawnLP = d.logprob(s.buf.logits, s.drawn, s.req.TopLogprobs)
	}
}

// emit streams the text of the token drawn for s (draw), ending the
// request at EOS, a stop string or its token limit.
func (e *Engine) emit(s *seq) {
	if s.req.PromptOnly {
		e.finish(s, infer.StopLength, nil)
		return
	}
	id, err := s.drawn, s.drawErr
	if err != nil {
		e.finish(s, "", fmt.Errorf("serve: position %d: %w", s.kv.Pos(), err))
		return
	}
	if s.dec == nil {
		s.dec = tokenizer.NewStreamDecoder(e.tok)
		s.dec.Prime(s.req.Prompt)
		s.stream.result.FirstToken = time.Since(s.submit)
		if e.obs != nil {
			e.obs.FirstToken(s.stream.result.FirstToken)
		}
	}
	if eos, bos := e.tok.EOS(), e.tok.BOS(); (eos >= 0 && id == eos) || (bos >= 0 && id == bos) {
		e.finish(s, infer.StopEOS, nil)
		return
	}
	s.produced++
	if s.req.Logprobs {
		s.lps = append(s.lps, s.drawnLP)
		s.unsent++
	}
	text, stopped := s.out.Add(s.dec.Next(id))
	if text != "" {
		s.stream.c <- Chunk{Text: text, Tokens: s.produced, Logprobs: s.takeUnsent()}
	}
	switch {
	case stopped:
		e.finish(s, infer.StopString, nil)
	case s.produced >= s.req.MaxTokens:
		e.finish(s, infer.StopLength, nil)
	default:
		s.next = id
	}
}

// finish ends s with reason or err, frees its KV cache and adapter reference
// and closes its stream.
func (e *Engine) finish(s *seq, reason infer.StopReason, err error) {
	if err == nil {
		rest := ""
		if reason != infer.StopString && s.dec != nil {
			rest = s.out.Flush(s.dec.Flush())
		}
		if rest != "" || s.unsent > 0 {
			s.stream.c <- Chunk{Text: rest, Tokens: s.produced, Logprobs: s.takeUnsent()}
		}
	}
	s.all = nil
	if s.kv != nil {
		s.kv.Close()
		s.kv = nil
		e.kvUsed -= s.maxLen
	}
	if s.buf != nil {
		if len(e.freeBuffers) < e.opts.MaxRunning {
			e.freeBuffers = append(e.freeBuffers, weak.Make(s.buf))
		}
		s.buf = nil
	}
	s.release()
	res := &s.stream.result
	res.Text = s.out.Text()
	res.PromptTokens = len(s.req.Prompt)
	res.CompletionTokens = s.produced
	res.Reason, res.Err = reason, err
	res.Logprobs, res.PromptLogprobs = s.lps, s.promptLPs
	if e.obs != nil {
		e.obs.Finished(s.req.Adapter, res.PromptTokens, res.CompletionTokens, reason, err)
	}
	close(s.stream.c)
	close(s.stream.done)
}

func (s *seq) release() {
	if s.handle != nil {
		s.handle.Release()
	}
	if s.stopWake != nil {
		s.stopWake()
	}
}

// allLogits returns s's buffer for a prompt chunk's logits at every token,
// n values.
func (s *seq) allLogits(n int) []float32 {
	if cap(s.all) < n {
		s.all = make([]float32, n)
	}
	s.all = s.all[:n]
	return s.all
}

// scorePrompt adds the logprobs of the prompt tokens that the chunk of n
// tokens just run predicts (each token's logits predict the next one), and
// once the prompt is done sends them all in a chunk. It ends s and reports
// false if the logits are missing or not finite. It runs on the loop after
// the step's draw, with the loop's drawer.
func (e *Engine) scorePrompt(s *seq, n int) bool {
	vocab := e.m.Weights().Config.VocabSize
	if math.IsNaN(float64(s.all[0])) {
		e.finish(s, "", fmt.Errorf("serve: the model (%T) did not write the logits of every prompt token (Row.AllLogits)", e.m))
		return false
	}
	start := s.fed - n
	for t := range n {
		next := start + t + 1
		if next == len(s.req.Prompt) {
			break
		}
		lp := e.drawers[0].logprob(s.all[t*vocab:(t+1)*vocab], s.req.Prompt[next], s.req.TopLogprobs)
		if math.IsNaN(lp.Logprob) {
			e.finish(s, "", fmt.Errorf("serve: prompt position %d: the logits are not finite", next-1))
			return false
		}
		s.promptLPs = append(s.promptLPs, lp)
	}
	if s.fed == len(s.req.Prompt) {
		s.all = nil
		if s.promptLPs == nil {
			s.promptLPs = []TokenLogprob{} // a prompt of one token: the chunk still says the prompt is scored
		}
		s.stream.c <- Chunk{PromptLogprobs: s.promptLPs}
	}
	return true
}

// takeUnsent returns the logprobs not yet sent in a chunk.
func (s *seq) takeUnsent() []TokenLogprob {
	if s.unsent == 0 {
		return nil
	}
	lps := s.lps[len(s.lps)-s.unsent:]
	s.unsent = 0
	return lps[:len(lps):len(lps)]
}
