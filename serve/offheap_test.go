package serve

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/golora/golora/internal/hugemem"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
)

// deltaOf returns ad's term at lin for the rows x (n rows), or the error.
func deltaOf(ad *Adapter, lin *model.Linear, x []float32, n int) ([]float32, error) {
	y := make([]float32, n*lin.Out)
	err := ad.AddDelta(lin, y, x, n)
	return y, err
}

// TestAdapterMemoryOutlivesEveryHandle: an adapter evicted, unloaded or
// replaced while a request holds it keeps working, with the values it was
// loaded with, until the request releases it; used after that (a stale
// reference) it refuses with ErrReleased instead of reading memory that is
// gone.
func TestAdapterMemoryOutlivesEveryHandle(t *testing.T) {
	base := embedded(t).Weights
	lin := base.Layers[0].Q
	x := make([]float32, lin.In)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	la := map[string]*lora.Adapter{"a": newAdapter(t, base, 4, 1), "b": newAdapter(t, base, 4, 2)}
	src := mapSource(la)
	want := make(map[string][]float32)
	for name, a := range la {
		y := make([]float32, lin.Out)
		if err := a.AddDelta(lin, y, x, 1); err != nil {
			t.Fatal(err)
		}
		want[name] = y
	}
	check := func(what string, ad *Adapter, name string) {
		t.Helper()
		got, err := deltaOf(ad, lin, x, 1)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for i := range got {
			if d := got[i] - want[name][i]; d > 1e-4 || d < -1e-4 {
				t.Fatalf("%s: element %d = %g, want %g", what, i, got[i], want[name][i])
			}
		}
	}
	mustRefuse := func(what string, ad *Adapter) {
		t.Helper()
		if _, err := deltaOf(ad, lin, x, 1); !errors.Is(err, ErrReleased) {
			t.Fatalf("%s: AddDelta = %v, want ErrReleased", what, err)
		}
	}
	ctx := context.Background()

	one := NewStore(src, base, StoreOptions{})
	h, err := one.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	size := h.Adapter().Bytes()
	h.Release()

	// Eviction while held: the cache holds one adapter; "b" waits for "a".
	s := NewStore(src, base, StoreOptions{MaxBytes: size})
	ha, err := s.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	loaded := make(chan *Handle)
	go func() {
		hb, err := s.Acquire(ctx, "b")
		if err != nil {
			t.Error(err)
		}
		loaded <- hb
	}()
	check("a held while b waits for room", ha.Adapter(), "a")
	stale := ha.Adapter()
	ha.Release() // now b evicts a
	hb := <-loaded
	if hb == nil {
		t.FailNow()
	}
	mustRefuse("a after release and eviction", stale)
	check("b", hb.Adapter(), "b")

	// Unload while held.
	s.Unload("b")
	check("b held after unload", hb.Adapter(), "b")
	stale = hb.Adapter()
	hb.Release()
	hb.Release() // a second release does not free twice or change the count
	mustRefuse("b after unload and release", stale)
	if u := s.Used(); u != 0 {
		t.Fatalf("Used = %d after every adapter was unloaded or evicted and released", u)
	}

	// Reload while held: the old version lives on for its holder (the cache
	// has room for both versions).
	s = NewStore(src, base, StoreOptions{MaxBytes: 2 * size})
	h1, err := s.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	check("old version held across a reload", h1.Adapter(), "a")
	stale = h1.Adapter()
	h1.Release()
	mustRefuse("old version after release", stale)
	h2, err := s.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	check("new version", h2.Adapter(), "a")
	h2.Release()
	// Released but still cached: its memory stays.
	check("cached, unreferenced", h2.Adapter(), "a")
}

// TestAdapterMemoryUnderChurn (run with -race): many clients acquire random
// adapters and compute with them while others unload, reload, pin and unpin,
// and a cache of four adapters evicts constantly. Every product a client
// computes equals the reference for its adapter: no adapter's memory was
// returned, reused or changed while a client held it.
func TestAdapterMemoryUnderChurn(t *testing.T) {
	base := embedded(t).Weights
	lin := base.Layers[1].Down
	const nAdapters = 8
	la := make(map[string]*lora.Adapter)
	for i := range nAdapters {
		la[fmt.Sprintf("a%d", i)] = newAdapter(t, base, 2+i%3, uint64(10+i))
	}
	x := make([]float32, 2*lin.In)
	for i := range x {
		x[i] = float32(i%11)/5 - 1
	}
	want := make(map[string][]float32)
	for name, a := range la {
		y := make([]float32, 2*lin.Out)
		if err := a.AddDelta(lin, y, x, 2); err != nil {
			t.Fatal(err)
		}
		want[name] = y
	}
	probe := NewStore(mapSource(la), base, StoreOptions{})
	h, err := probe.Acquire(context.Background(), "a2")
	if err != nil {
		t.Fatal(err)
	}
	largest := h.Adapter().Bytes()
	h.Release()
	s := NewStore(mapSource(la), base, StoreOptions{MaxBytes: 4 * largest})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rounds := 300
	if testing.Short() {
		rounds = 60
	}
	var wg sync.WaitGroup
	for c := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for range rounds {
				name := fmt.Sprintf("a%d", rng.IntN(nAdapters))
				h, err := s.Acquire(ctx, name)
				if err != nil {
					t.Error(err)
					return
				}
				for range 2 {
					got, err := deltaOf(h.Adapter(), lin, x, 2)
					if err != nil {
						t.Errorf("client %d, %s: %v", c, name, err)
						h.Release()
						return
					}
					for i := range got {
						if d := got[i] - want[name][i]; d > 1e-4 || d < -1e-4 {
							t.Errorf("client %d, %s: element %d = %g, want %g", c, name, i, got[i], want[name][i])
							h.Release()
							return
						}
					}
				}
				h.Release()
			}
		})
	}
	for c := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 2))
			pinned := "" // one pin each at most, so that pins cannot fill the cache
			for range rounds / 2 {
				name := fmt.Sprintf("a%d", rng.IntN(nAdapters))
				switch rng.IntN(4) {
				case 0:
					s.Unload(name)
				case 1:
					if err := s.Load(ctx, name); err != nil {
						t.Error(err)
					}
				case 2:
					if pinned != "" {
						s.Unpin(pinned)
					}
					if err := s.Pin(ctx, name); err != nil {
						t.Error(err)
					}
					pinned = name
				case 3:
					s.Unpin(pinned)
					pinned = ""
				}
			}
		})
	}
	wg.Wait()
	for _, c := range s.Cached() {
		s.Unload(c.Name)
	}
	if u := s.Used(); u != 0 {
		t.Errorf("Used = %d with nothing cached or held", u)
	}
}

// TestDirDecodesIntoPlace: adapters a Dir store decodes straight from the
// file into cache memory, a chunk at a time (chunks of 2048 values and of 5,
// so that B's rows and half-precision conversion span many chunks), hold
// exactly the values of lora.Load's adapter prepared whole.
func TestDirDecodesIntoPlace(t *testing.T) {
	base := embedded(t).Weights
	dir := t.TempDir()
	writeAdapters(t, base, dir, 1, 3)
	loaded, err := lora.Load(dir + "/a0")
	if err != nil {
		t.Fatal(err)
	}
	for _, prec := range []Precision{Float32, Float16} {
		want, err := prepare("a0", loraPairs{loaded}, base, prec, newAdapterPool(1<<30))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{chunk, 5} {
			r, err := lora.OpenReader(dir + "/a0")
			if err != nil {
				t.Fatal(err)
			}
			got, err := prepareChunked("a0", readerPairs{r}, base, prec, newAdapterPool(1<<30), make([]float32, n))
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got.Bytes() != want.Bytes() || len(got.terms) != len(want.terms) {
				t.Fatalf("%s, chunk %d: %d bytes in %d terms, want %d in %d", prec, n, got.Bytes(), len(got.terms), want.Bytes(), len(want.terms))
			}
			for i, lin := range want.lins {
				w, j := want.terms[i], slices.Index(got.lins, lin)
				if j < 0 {
					t.Fatalf("%s, chunk %d: %s missing from the adapter prepared from lora.Load", prec, n, lin.Name)
				}
				if g := got.terms[j]; !slices.Equal(g.A, w.A) || !slices.Equal(g.BT, w.BT) || !slices.Equal(g.A16, w.A16) || !slices.Equal(g.BT16, w.BT16) || g.Scale != w.Scale {
					t.Fatalf("%s, chunk %d: %s differs from the adapter prepared from lora.Load", prec, n, lin.Name)
				}
			}
			got.free()
		}
		want.free()
	}
	// And the store reads a Dir that way.
	s := NewStore(Dir(dir), base, StoreOptions{})
	h, err := s.Acquire(context.Background(), "a0")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	lin := base.Layers[0].V
	x := make([]float32, lin.In)
	for i := range x {
		x[i] = float32(i%5) - 2
	}
	got, err := deltaOf(h.Adapter(), lin, x, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, lin.Out)
	if err := loaded.AddDelta(lin, want, x, 1); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if d := got[i] - want[i]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("store on a Dir: element %d = %g, lora gives %g", i, got[i], want[i])
		}
	}
}

// slowSource counts the loads in flight at once.
type slowSource struct {
	mapSource
	mu           sync.Mutex
	now, maximum int
}

func (s *slowSource) Load(ctx context.Context, name string) (*lora.Adapter, error) {
	s.mu.Lock()
	s.now++
	s.maximum = max(s.maximum, s.now)
	s.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	s.mu.Lock()
	s.now--
	s.mu.Unlock()
	return s.mapSource.Load(ctx, name)
}

// TestStoreBoundsLoadsInFlight: 12 requests for 12 different cold adapters
// read at most MaxLoads of them at once (each load in flight holds memory
// outside the cache's bound), and all of them are served.
func TestStoreBoundsLoadsInFlight(t *testing.T) {
	base := embedded(t).Weights
	src := &slowSource{mapSource: make(mapSource)}
	for i := range 12 {
		src.mapSource[fmt.Sprintf("a%d", i)] = newAdapter(t, base, 1, uint64(i+1))
	}
	s := NewStore(src, base, StoreOptions{MaxLoads: 2})
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			h, err := s.Acquire(context.Background(), fmt.Sprintf("a%d", i))
			if err != nil {
				t.Error(err)
				return
			}
			h.Release()
		})
	}
	wg.Wait()
	if src.maximum > 2 || src.maximum < 1 {
		t.Errorf("%d loads in flight at once, want at most MaxLoads = 2", src.maximum)
	}
	if n := len(s.Cached()); n != 12 {
		t.Errorf("%d adapters cached, want 12", n)
	}
}

// TestEngineKeepsNoFinishedRequest: requests that queued and finished are
// not kept alive by the engine (the queue's array held each one, with its
// sampler and logits, some 400 KB on a 32k vocabulary, until the array was
// reallocated), and their adapters' references are all released.
func TestEngineKeepsNoFinishedRequest(t *testing.T) {
	e, _ := newTestEngine(t, 3, nil, EngineOptions{MaxRunning: 1})
	weakStreams := func() []weak.Pointer[Stream] {
		var ws []weak.Pointer[Stream]
		var streams []*Stream
		for i := range 6 {
			s, err := e.Submit(context.Background(), Request{Adapter: fmt.Sprintf("a%d", i%3), Prompt: prompt(e, "Once"), MaxTokens: 3})
			if err != nil {
				t.Fatal(err)
			}
			streams = append(streams, s)
			ws = append(ws, weak.Make(s))
		}
		for i, s := range streams {
			if r := s.Result(); r.Err != nil {
				t.Fatalf("request %d: %v", i, r.Err)
			}
		}
		return ws
	}()
	runtime.GC()
	for i, w := range weakStreams {
		if w.Value() != nil {
			t.Errorf("request %d is still reachable after it finished and its caller dropped it", i)
		}
	}
	for _, c := range e.Store().Cached() {
		if c.InUse != 0 {
			t.Errorf("adapter %s: %d references after every request finished", c.Name, c.InUse)
		}
	}
}

// TestEngineChurnKeepsAdapterText (run with -race): greedy requests on six
// adapters decode while adapters are unloaded and reloaded and a cache of
// three adapters' bytes evicts constantly, so that the pool hands the
// ranges of adapters that left the cache to the next ones loaded. Every
// request's text equals the one it gets alone on a quiet engine: no step
// read an adapter's memory after it went back to the pool.
func TestEngineChurnKeepsAdapterText(t *testing.T) {
	ck := embedded(t)
	dir := t.TempDir()
	names := writeAdapters(t, ck.Weights, dir, 6, 4)
	prompts := []string{"Once upon a time", "The cat"}
	newEngine := func(maxBytes int64) *Engine {
		m, err := NewBatchedModel(ck.Weights)
		if err != nil {
			t.Fatal(err)
		}
		e, err := NewEngine(m, NewStore(Dir(dir), ck.Weights, StoreOptions{MaxBytes: maxBytes}), ck.Tokenizer, EngineOptions{MaxRunning: 8, PrefillChunk: 8})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Shutdown(context.Background()) })
		return e
	}
	run := func(e *Engine, adapter, p string) (string, error) {
		s, err := e.Submit(context.Background(), Request{Adapter: adapter, Prompt: prompt(e, p), MaxTokens: 16})
		if err != nil {
			return "", err
		}
		res := s.Result()
		return res.Text, res.Err
	}
	quiet := newEngine(0)
	want := make(map[[2]string]string)
	for _, a := range names {
		for _, p := range prompts {
			text, err := run(quiet, a, p)
			if err != nil {
				t.Fatal(err)
			}
			want[[2]string{a, p}] = text
		}
	}
	size := quiet.Store().Cached()[0].Bytes
	e := newEngine(3 * size)

	stopChurn := churnAdapters(t, e, names, 5, time.Millisecond)
	clients, perClient := 8, 6
	if testing.Short() {
		perClient = 2
	}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for range perClient {
				a, p := names[rng.IntN(len(names))], prompts[rng.IntN(len(prompts))]
				text, err := run(e, a, p)
				if err != nil {
					t.Errorf("%s %q: %v", a, p, err)
					return
				}
				if text != want[[2]string{a, p}] {
					t.Errorf("%s %q under churn: %q, alone %q", a, p, text, want[[2]string{a, p}])
				}
			}
		})
	}
	wg.Wait()
	stopChurn()
	if st := e.store.pool.Stats(); st.Chunks != 1 {
		t.Errorf("pool %+v: want the adapters in one chunk", st)
	}
}

// TestStoreLoadsWhenPoolIsFull: an adapter for which the store's pool has
// no room is still served, from memory of its own, and freed like the
// others; the metrics count the fallback.
func TestStoreLoadsWhenPoolIsFull(t *testing.T) {
	base := embedded(t).Weights
	la := map[string]*lora.Adapter{"a": newAdapter(t, base, 4, 1)}
	lin := base.Layers[0].Q
	x := make([]float32, lin.In)
	for i := range x {
		x[i] = float32(i%5) - 2
	}
	want := make([]float32, lin.Out)
	if err := la["a"].AddDelta(lin, want, x, 1); err != nil {
		t.Fatal(err)
	}
	metrics := NewMetrics()
	s := NewStore(mapSource(la), base, StoreOptions{Events: metrics.StoreEvent})
	var err error
	if s.pool, err = hugemem.NewPool(1, 0); err != nil {
		t.Fatal(err)
	}
	h, err := s.Acquire(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	got, err := deltaOf(h.Adapter(), lin, x, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if d := got[i] - want[i]; d > 1e-4 || d < -1e-4 {
			t.Fatalf("element %d = %g, want %g", i, got[i], want[i])
		}
	}
	if st := s.pool.Stats(); st.Mapped != 0 {
		t.Errorf("a pool of limit 0 mapped %d bytes", st.Mapped)
	}
	if n := counterValue(t, metrics, "golora_adapter_pool_fallbacks_total"); n != 1 {
		t.Errorf("golora_adapter_pool_fallbacks_total = %v after one adapter loaded outside the pool, want 1", n)
	}
	stale := h.Adapter()
	s.Unload("a")
	h.Release()
	if _, err := deltaOf(stale, lin, x, 1); !errors.Is(err, ErrReleased) {
		t.Errorf("after unload and release: %v, want ErrReleased", err)
	}
}

// counterValue returns the value of the counter name (without labels) in
// m's registry.
func counterValue(t *testing.T, m *Metrics, name string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}
