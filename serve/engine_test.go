package serve

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
)

// newTestEngine serves the embedded model with n rank-4 adapters on disk.
func newTestEngine(t testing.TB, n int, m func(*model.Weights) Model, opts EngineOptions) (*Engine, string) {
	t.Helper()
	ck := embedded(t)
	dir := t.TempDir()
	writeAdapters(t, ck.Weights, dir, n, 4)
	store := NewStore(Dir(dir), ck.Weights, StoreOptions{})
	if m == nil {
		m = batched(t)
	}
	e, err := NewEngine(m(ck.Weights), store, ck.Tokenizer, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Shutdown(context.Background()) })
	return e, dir
}

func batched(t testing.TB) func(*model.Weights) Model {
	return func(w *model.Weights) Model {
		m, err := NewBatchedModel(w)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
}

func perRow(w *model.Weights) Model { return NewPerRowModel(w, 0) }

func prompt(e *Engine, text string) []int {
	tok := e.Tokenizer()
	return append([]int{tok.BOS()}, tok.Encode(text)...)
}

// TestEngineMatchesGenerator checks requests run together in one batch, each
// with its own adapter or none, against infer.Generator running each alone
// with the lora.Adapter read from the same files (the reference path, which
// shares no code with the store's grouped adapter products): greedy text is
// identical.
func TestEngineMatchesGenerator(t *testing.T) {
	t.Run("batched", func(t *testing.T) { testEngineMatchesGenerator(t, batched(t)) })
	t.Run("per-row", func(t *testing.T) { testEngineMatchesGenerator(t, perRow) })
}

func testEngineMatchesGenerator(t *testing.T, m func(*model.Weights) Model) {
	e, dir := newTestEngine(t, 3, m, EngineOptions{PrefillChunk: 5, MaxStepTokens: 12})
	ck := embedded(t)
	prompts := []string{"Once upon a time", "Lily had a big red ball and", "The cat", "Tom and Sue went to the park. They"}
	type job struct {
		adapter, prompt string
		stream          *Stream
	}
	var jobs []*job
	for i, p := range prompts {
		for _, a := range []string{"", "a0", "a1", "a2"} {
			j := &job{adapter: a, prompt: p}
			s, err := e.Submit(context.Background(), Request{Adapter: a, Prompt: prompt(e, p), MaxTokens: 20 + i})
			if err != nil {
				t.Fatal(err)
			}
			j.stream = s
			jobs = append(jobs, j)
		}
	}
	texts := map[string]bool{}
	for _, j := range jobs {
		var streamed string
		for c := range j.stream.C {
			streamed += c.Text
		}
		res := j.stream.Result()
		if res.Err != nil {
			t.Fatalf("%s %q: %v", j.adapter, j.prompt, res.Err)
		}
		if streamed != res.Text {
			t.Errorf("%s %q: streamed %q, result %q", j.adapter, j.prompt, streamed, res.Text)
		}
		opts := infer.GenerateOptions{MaxTokens: res.CompletionTokens}
		if j.adapter != "" {
			a, err := lora.LoadFor(filepath.Join(dir, j.adapter), ck.Weights)
			if err != nil {
				t.Fatal(err)
			}
			opts.Adapter = a
		}
		want, err := infer.Generate(context.Background(), ck.Weights, ck.Tokenizer, j.prompt, opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.Text != want {
			t.Errorf("adapter %q prompt %q:\nbatched %q\nalone   %q", j.adapter, j.prompt, res.Text, want)
		}
		texts[res.Text] = true
	}
	// The adapters must change the text, or the comparison proves little.
	if len(texts) < len(jobs)*3/4 {
		t.Errorf("%d requests gave only %d distinct texts", len(jobs), len(texts))
	}
}

// TestEngineSeededSamplingIndependentOfBatch runs a seeded sampled request
// alone, then among 12 others with other adapters and seeds: same text.
func TestEngineSeededSamplingIndependentOfBatch(t *testing.T) {
	e, _ := newTestEngine(t, 2, nil, EngineOptions{PrefillChunk: 4})
	req := Request{Adapter: "a1", Prompt: prompt(e, "Once upon a time"), MaxTokens: 30, Temperature: 0.9, TopP: 0.95, Seed: 7}
	run := func(r Request) *Stream {
		s, err := e.Submit(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	alone := run(req).Result()
	var others []*Stream
	for i := range 12 {
		r := req
		r.Adapter = []string{"", "a0", "a1"}[i%3]
		r.Seed = uint64(100 + i)
		others = append(others, run(r))
	}
	together := run(req).Result()
	for _, s := range others {
		s.Result()
	}
	if alone.Err != nil || together.Err != nil {
		t.Fatal(alone.Err, together.Err)
	}
	if alone.Text != together.Text {
		t.Errorf("seeded request alone %q, in a batch %q", alone.Text, together.Text)
	}
	if alone.CompletionTokens == 0 {
		t.Error("no tokens generated")
	}
}

func TestEngineStopStringsAndLimits(t *testing.T) {
	e, _ := newTestEngine(t, 0, nil, EngineOptions{})
	p := prompt(e, "Once upon a time")
	full, err := e.Submit(context.Background(), Request{Prompt: p, MaxTokens: 40})
	if err != nil {
		t.Fatal(err)
	}
	res := full.Result()
	if res.Reason != infer.StopLength || res.CompletionTokens != 40 {
		t.Fatalf("reason %q after %d tokens, want length after 40", res.Reason, res.CompletionTokens)
	}
	// Stop at the second word of the greedy text.
	stop := res.Text[5:9]
	cut, err := e.Submit(context.Background(), Request{Prompt: p, MaxTokens: 40, Stop: []string{"zzz", stop}})
	if err != nil {
		t.Fatal(err)
	}
	var streamed string
	for c := range cut.C {
		streamed += c.Text
	}
	got := cut.Result()
	want := res.Text[:strings.Index(res.Text, stop)]
	if got.Reason != infer.StopString || got.Text != want || streamed != want {
		t.Errorf("stop %q: reason %q text %q streamed %q, want %q", stop, got.Reason, got.Text, streamed, want)
	}
	for _, bad := range []Request{
		{Prompt: nil},
		{Prompt: []int{1, 100000}},
		{Prompt: p, MaxTokens: -1},
		{Prompt: make([]int, 600)},
		{Prompt: p, Stop: []string{""}},
		{Prompt: p, Temperature: -1},
	} {
		if _, err := e.Submit(context.Background(), bad); err == nil {
			t.Errorf("Submit(%+v) accepted", bad)
		}
	}
	if _, err := e.Submit(context.Background(), Request{Prompt: p, Adapter: "nope"}); !errors.Is(err, ErrUnknownAdapter) {
		t.Errorf("unknown adapter: %v", err)
	}
}

// TestEngineKVBudgetAndCancellation fills the KV budget with one request,
// checks that the next waits, and that cancelling the first lets it run.
// slowModel is a Model whose every step takes delay longer, so that a
// request of many tokens is still in flight when a test acts on it, however
// fast the machine decodes the embedded model.
type slowModel struct {
	Model
	delay time.Duration
}

func (m slowModel) Step(rows []Row) error {
	time.Sleep(m.delay)
	return m.Model.Step(rows)
}

func TestEngineKVBudgetAndCancellation(t *testing.T) {
	// The first request's 480 tokens take at least 480 ms: with the AVX2
	// kernels the embedded model decoded them in about 30 ms, and the
	// request sometimes ended by itself before the cancellation.
	slow := func(w *model.Weights) Model { return slowModel{batched(t)(w), time.Millisecond} }
	e, _ := newTestEngine(t, 0, slow, EngineOptions{KVTokens: 500})
	p := prompt(e, "Once upon a time")
	ctx, cancel := context.WithCancel(context.Background())
	big, err := e.Submit(ctx, Request{Prompt: p, MaxTokens: 480})
	if err != nil {
		t.Fatal(err)
	}
	<-big.C // running
	small, err := e.Submit(context.Background(), Request{Prompt: p, MaxTokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-small.C:
		t.Fatal("a request beyond the KV budget ran beside the first")
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	res := big.Result()
	if !errors.Is(res.Err, context.Canceled) {
		t.Errorf("cancelled request ended with %v", res.Err)
	}
	if r := small.Result(); r.Err != nil || r.CompletionTokens == 0 {
		t.Errorf("waiting request after the cancellation: %+v", r)
	}
	if r := small.Result(); r.Queued < 20*time.Millisecond {
		t.Errorf("queued %v, want at least the 20 ms the first request held the budget", r.Queued)
	}
}

// churnAdapters unloads or loads one of names at random every period, on a
// goroutine of its own, until the returned stop is called: the churn that
// concurrency tests run their clients under. A failed load fails t.
func churnAdapters(t *testing.T, e *Engine, names []string, seed uint64, period time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(seed, seed+1))
		for {
			select {
			case <-done:
				return
			case <-time.After(period):
			}
			name := names[rng.IntN(len(names))]
			if rng.IntN(2) == 0 {
				e.Store().Unload(name)
			} else if err := e.Store().Load(context.Background(), name); err != nil {
				t.Error(err)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// TestEngineConcurrentChurn runs many clients on random adapters while
// adapters are reloaded and unloaded and requests are cancelled; run with
// -race.
func TestEngineConcurrentChurn(t *testing.T) {
	e, _ := newTestEngine(t, 6, nil, EngineOptions{MaxRunning: 8, PrefillChunk: 8})
	// A cache of 3 adapters' bytes for 6 adapters forces evictions.
	h, err := e.Store().Acquire(context.Background(), "a0")
	if err != nil {
		t.Fatal(err)
	}
	e.store.opts.MaxBytes = 3 * h.Adapter().Bytes()
	h.Release()
	clients, perClient := 12, 4
	if testing.Short() {
		clients = 6
	}
	names := make([]string, 6)
	for i := range names {
		names[i] = fmt.Sprintf("a%d", i)
	}
	stopChurn := churnAdapters(t, e, names, 1, 2*time.Millisecond)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 3))
			for range perClient {
				adapter := ""
				if k := rng.IntN(7); k < 6 {
					adapter = fmt.Sprintf("a%d", k)
				}
				ctx, cancel := context.WithCancel(context.Background())
				s, err := e.Submit(ctx, Request{Adapter: adapter, Prompt: prompt(e, "Once upon a time"), MaxTokens: 5 + rng.IntN(20), Temperature: 0.8, Seed: rng.Uint64()})
				if err != nil {
					t.Error(err)
					cancel()
					return
				}
				cancelAt := -1
				if rng.IntN(3) == 0 {
					cancelAt = rng.IntN(3)
				}
				n := 0
				for range s.C {
					if n == cancelAt {
						cancel()
					}
					n++
				}
				res := s.Result()
				if res.Err != nil && !(cancelAt >= 0 && errors.Is(res.Err, context.Canceled)) {
					t.Errorf("request on %q: %v", adapter, res.Err)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	stopChurn()
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Everything released: the store holds only cached, unreferenced adapters.
	for _, c := range e.Store().Cached() {
		if c.InUse != 0 {
			t.Errorf("adapter %s still has %d users after every request ended", c.Name, c.InUse)
		}
	}
	if e.kvUsed != 0 {
		t.Errorf("KV budget still holds %d positions", e.kvUsed)
	}
}

// trimCounter is a BatchedModel that counts Trim calls.
type trimCounter struct {
	*BatchedModel
	trims atomic.Int32
}

func (m *trimCounter) Trim() {
	m.trims.Add(1)
	m.BatchedModel.Trim()
}

// TestEngineTrimsOnceIdle: the engine keeps the model's closed caches while
// requests come, and frees them (Trim) once it has been idle for a while;
// requests run as before afterwards.
func TestEngineTrimsOnceIdle(t *testing.T) {
	ck := embedded(t)
	bm, err := NewBatchedModel(ck.Weights)
	if err != nil {
		t.Fatal(err)
	}
	m := &trimCounter{BatchedModel: bm}
	e, err := NewEngine(m, nil, ck.Tokenizer, EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	run := func() string {
		s, err := e.Submit(context.Background(), Request{Prompt: prompt(e, "Once upon a time"), MaxTokens: 8})
		if err != nil {
			t.Fatal(err)
		}
		res := s.Result()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		return res.Text
	}
	first := run()
	const wait = 10 * time.Second // idleTrimDelay, on a machine however busy
	deadline := time.Now().Add(wait)
	for m.trims.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no Trim %v after the engine went idle", wait)
		}
		time.Sleep(time.Millisecond)
	}
	if n := m.trims.Load(); n != 1 {
		t.Fatalf("%d Trims in one idle period, want 1", n)
	}
	if again := run(); again != first {
		t.Fatalf("after Trim, greedy text %q; before, %q", again, first)
	}
}
