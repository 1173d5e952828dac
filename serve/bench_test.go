package serve

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/infer"
	"github.com/golora/golora/nf4"
)

// stories15M is the shape of karpathy's stories15M (llama2.c): dim 288,
// 6 layers, 6 heads, vocabulary 32000, tied output head.
var stories15M = model.Config{
	Dim: 288, HiddenDim: 768, Layers: 6, Heads: 6, KVHeads: 6, HeadDim: 48,
	VocabSize: 32000, MaxSeqLen: 256, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true,
}

// randomNF4Base returns a stories15M-shaped base with random weights (the
// scale of a fresh LLaMA) and its block linears in NF4.
func randomNF4Base(tb testing.TB) *model.Weights {
	tb.Helper()
	w := model.RandomWeights(stories15M, 15)
	if err := w.Quantize(context.Background(), nf4.Quantizer(nf4.Options{})); err != nil {
		tb.Fatal(err)
	}
	return w
}

// memSource makes adapter "aN" on request: rank 8 on every block linear,
// random A and B from seed N. It stands for a directory of as many adapters
// without writing them.
type memSource struct {
	base  *model.Weights
	count int
}

func (m memSource) Load(_ context.Context, name string) (*lora.Adapter, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "a"))
	if err != nil || !strings.HasPrefix(name, "a") || n < 0 || n >= m.count {
		return nil, fmt.Errorf("%w %q", ErrUnknownAdapter, name)
	}
	cfg := lora.DefaultConfig()
	cfg.R, cfg.Alpha = 8, 16
	cfg.TargetModules = lora.ModuleRegex(lora.AllLinear)
	cfg.InitLoRAWeights = lora.InitLinearDefault
	return lora.New(m.base, cfg, uint64(n+1))
}

func (m memSource) Names(context.Context) ([]string, error) {
	names := make([]string, m.count)
	for i := range names {
		names[i] = "a" + strconv.Itoa(i)
	}
	return names, nil
}

// runWave submits one request per adapter name (empty for the base) with the
// same short prompt, greedy, maxTokens each, and returns the completion
// tokens and each request's time to first token.
func runWave(tb testing.TB, e *Engine, adapters []string, maxTokens int) (int, []time.Duration) {
	return runSampledWave(tb, e, adapters, Request{MaxTokens: maxTokens})
}

// runSampledWave is runWave with the sampling options of like (its Seed
// plus the request's index as each request's seed).
func runSampledWave(tb testing.TB, e *Engine, adapters []string, like Request) (int, []time.Duration) {
	prompt := []int{1, 400, 1200, 77, 5000, 31}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	var ttft []time.Duration
	for i, a := range adapters {
		req := like
		req.Adapter, req.Prompt, req.Seed = a, prompt, like.Seed+uint64(i)
		s, err := e.Submit(context.Background(), req)
		if err != nil {
			tb.Fatal(err)
		}
		wg.Go(func() {
			res := s.Result()
			if res.Err != nil {
				tb.Error(res.Err)
			}
			mu.Lock()
			total += res.CompletionTokens
			ttft = append(ttft, res.FirstToken)
			mu.Unlock()
		})
	}
	wg.Wait()
	return total, ttft
}

// BenchmarkServeAdapters compares aggregate decode throughput at 32
// concurrent streams on a stories15M-shaped NF4 base: every stream on a
// different adapter (mixed), all on one adapter (single), no adapter (base);
// and the same 32 requests run one at a time (sequential). Adapters are
// rank 8 on every block linear, cached before timing. Each request has a
// 6-token prompt and generates 32 tokens (greedy). Metrics:
//   - tokens/s: generated tokens over the wall time of the waves, end to
//     end (prefill, scheduling and the waits between waves included), and
//     tokens/cpu-s the same over the process's CPU time;
//   - decode-tokens/s: the decode phase alone. Its tokens are those each
//     request generates after its first one; its time is the wall time
//     during which at least one request is decoding, from the moment a
//     request's first token is sampled to the end of the request. The
//     prefill that produces a request's first token is left out when no
//     other request is decoding meanwhile (the sequential runs, and the
//     first step of a 32-stream wave, which prefills all its prompts), as
//     are the burst wait and the idle time between waves;
//   - steps/wave, and time to first token p50/p99 in ms.
func BenchmarkServeAdapters(b *testing.B) {
	base := randomNF4Base(b)
	const streams, maxTokens = 32, 32
	for _, prec := range []Precision{Float32, Float16} {
		store := NewStore(memSource{base: base, count: 1000}, base, StoreOptions{Precision: prec})
		mixed := make([]string, streams)
		for i := range mixed {
			mixed[i] = "a" + strconv.Itoa(i)
			if err := store.Pin(context.Background(), mixed[i]); err != nil {
				b.Fatal(err)
			}
		}
		cases := []struct {
			name     string
			adapters []string
			running  int
		}{
			{"mixed", mixed, streams},
			{"single", slices.Repeat([]string{"a0"}, streams), streams},
			{"base", make([]string, streams), streams},
			{"sequential-single", slices.Repeat([]string{"a0"}, streams), 1},
		}
		for _, tc := range cases {
			if prec == Float16 && tc.name != "mixed" && tc.name != "single" {
				continue
			}
			b.Run(prec.String()+"/"+tc.name, func(b *testing.B) {
				m, err := NewBatchedModel(base)
				if err != nil {
					b.Fatal(err)
				}
				steps := &waveObserver{}
				e, err := NewEngine(m, store, embedded(b).Tokenizer, EngineOptions{MaxRunning: tc.running, Observer: steps})
				if err != nil {
					b.Fatal(err)
				}
				defer e.Shutdown(context.Background())
				tokens := 0
				var ttft []time.Duration
				steps.reset()
				start, cpu0 := time.Now(), cpuTime()
				for b.Loop() {
					n, t := runWave(b, e, tc.adapters, maxTokens)
					tokens += n
					ttft = append(ttft, t...)
				}
				b.ReportMetric(float64(tokens)/time.Since(start).Seconds(), "tokens/s")
				// The machine is shared: CPU time per token is steadier than
				// wall time when other processes take the cores.
				b.ReportMetric(float64(tokens)/(cpuTime()-cpu0).Seconds(), "tokens/cpu-s")
				decodeTokens, decodeTime := steps.decode()
				b.ReportMetric(float64(decodeTokens)/decodeTime.Seconds(), "decode-tokens/s")
				// A wave of 32 requests of 32 tokens takes 32 steps at best:
				// more says that the burst was split.
				b.ReportMetric(float64(steps.steps())/float64(b.N), "steps/wave")
				slices.Sort(ttft)
				b.ReportMetric(float64(ttft[len(ttft)/2].Microseconds())/1e3, "ttft-p50-ms")
				b.ReportMetric(float64(ttft[len(ttft)*99/100].Microseconds())/1e3, "ttft-p99-ms")
			})
		}
	}
}

// BenchmarkContinuousBatching measures what continuous batching buys on the
// workload of BenchmarkServeAdapters/f32/single and sequential-single, the
// two run by turns so that both see the same load of a shared machine:
// each iteration runs one wave of 32 concurrent requests on one engine,
// then two of the same requests one at a time on another (MaxRunning 1).
// The turns are short (about 250 and 80 ms on an idle machine), so that
// neither engine goes idle for idleTrimDelay and frees its caches between
// its turns: both run warm, as in BenchmarkServeAdapters (on a machine so
// loaded that a turn takes over half a second, the one-at-a-time engine
// regrows one cache and one logits buffer after the other's turn). Metrics: tokens/s and decode-tokens/s
// of each (as BenchmarkServeAdapters defines them), and their ratios,
// concurrent over one at a time.
func BenchmarkContinuousBatching(b *testing.B) {
	base := randomNF4Base(b)
	const streams, maxTokens = 32, 32
	store := NewStore(memSource{base: base, count: 1}, base, StoreOptions{})
	if err := store.Pin(context.Background(), "a0"); err != nil {
		b.Fatal(err)
	}
	adapters := slices.Repeat([]string{"a0"}, streams)
	type side struct {
		e      *Engine
		obs    *waveObserver
		tokens int
		wall   time.Duration
	}
	var sides [2]side // concurrent, one at a time
	for i, running := range []int{streams, 1} {
		m, err := NewBatchedModel(base)
		if err != nil {
			b.Fatal(err)
		}
		obs := &waveObserver{}
		e, err := NewEngine(m, store, embedded(b).Tokenizer, EngineOptions{MaxRunning: running, Observer: obs})
		if err != nil {
			b.Fatal(err)
		}
		defer e.Shutdown(context.Background())
		sides[i] = side{e: e, obs: obs}
	}
	turn := func(s *side, requests int) {
		start := time.Now()
		n, _ := runWave(b, s.e, adapters[:requests], maxTokens)
		s.wall += time.Since(start)
		s.tokens += n
	}
	const oneAtATime = 2 // requests per turn
	// A first turn each, untimed, grows the caches and scratch.
	turn(&sides[0], streams)
	turn(&sides[1], oneAtATime)
	for i := range sides {
		sides[i].obs.reset()
		sides[i].tokens, sides[i].wall = 0, 0
	}
	for b.Loop() {
		turn(&sides[0], streams)
		turn(&sides[1], oneAtATime)
	}
	var rate, decodeRate [2]float64
	for i, s := range sides {
		rate[i] = float64(s.tokens) / s.wall.Seconds()
		tokens, d := s.obs.decode()
		decodeRate[i] = float64(tokens) / d.Seconds()
	}
	b.ReportMetric(rate[0], "concurrent-tokens/s")
	b.ReportMetric(rate[1], "one-at-a-time-tokens/s")
	b.ReportMetric(rate[0]/rate[1], "ratio")
	b.ReportMetric(decodeRate[0], "concurrent-decode-tokens/s")
	b.ReportMetric(decodeRate[1], "one-at-a-time-decode-tokens/s")
	b.ReportMetric(decodeRate[0]/decodeRate[1], "decode-ratio")
}

// BenchmarkServeSampling measures what sampling at a temperature costs a
// server: 32 concurrent streams on the stories15M-shaped NF4 base, no
// adapter, 32 tokens each, greedy against temperature 1 with top-p 0.95
// (seeded), and the latter with the logprobs of 5 alternatives per token, a
// vocabulary of 32,000. Metrics: generated tokens per second of wall time
// and of CPU time.
func BenchmarkServeSampling(b *testing.B) {
	base := randomNF4Base(b)
	const streams, maxTokens = 32, 32
	for _, tc := range []struct {
		name string
		like Request
	}{
		{"greedy", Request{MaxTokens: maxTokens}},
		{"T=1,top-p=0.95", Request{MaxTokens: maxTokens, Temperature: 1, TopP: 0.95, Seed: 1}},
		{"T=1,top-p=0.95,logprobs=5", Request{MaxTokens: maxTokens, Temperature: 1, TopP: 0.95, Seed: 1, Logprobs: true, TopLogprobs: 5}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m, err := NewBatchedModel(base)
			if err != nil {
				b.Fatal(err)
			}
			e, err := NewEngine(m, nil, embedded(b).Tokenizer, EngineOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Shutdown(context.Background())
			tokens := 0
			cpu0 := cpuTime()
			for b.Loop() {
				n, _ := runSampledWave(b, e, make([]string, streams), tc.like)
				tokens += n
			}
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
			b.ReportMetric(float64(tokens)/(cpuTime()-cpu0).Seconds(), "tokens/cpu-s")
		})
	}
}

// waveObserver is an Observer that counts the engine's steps and measures
// its decode phase: the requests that have had their first token and have
// not ended, the wall time during which there is at least one, and the
// tokens they generate after their first. The engine calls it from its
// goroutine; the benchmark reads it between waves.
type waveObserver struct {
	mu           sync.Mutex
	nSteps       int
	decoding     int           // requests between their first token and their end
	since        time.Time     // when decoding last became non-zero
	decodeTime   time.Duration // closed periods with decoding > 0
	decodeTokens int
}

func (o *waveObserver) reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.nSteps, o.decoding, o.decodeTime, o.decodeTokens = 0, 0, 0, 0
}

// steps returns the steps run since reset.
func (o *waveObserver) steps() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.nSteps
}

// decode returns the tokens generated after each request's first and the
// wall time with at least one request decoding, since reset.
func (o *waveObserver) decode() (int, time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	d := o.decodeTime
	if o.decoding > 0 {
		d += time.Since(o.since)
	}
	return o.decodeTokens, d
}

func (o *waveObserver) Step(int, int, time.Duration) {
	o.mu.Lock()
	o.nSteps++
	o.mu.Unlock()
}

func (o *waveObserver) Admitted(time.Duration) {}

func (o *waveObserver) FirstToken(time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.decoding == 0 {
		o.since = time.Now()
	}
	o.decoding++
}

func (o *waveObserver) Finished(_ string, _, completion int, _ infer.StopReason, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil || o.decoding == 0 {
		// A failed request may have ended before its first token; the
		// benchmark fails on it anyway.
		return
	}
	o.decodeTokens += max(0, completion-1)
	if o.decoding--; o.decoding == 0 {
		o.decodeTime += time.Since(o.since)
	}
}

// BenchmarkAdapterColdLoad measures loading adapters from disk into the
// store (read, check against the base, prepare): each iteration loads a
// rank-8 all-linear adapter of the stories15M shape not cached before.
func BenchmarkAdapterColdLoad(b *testing.B) {
	base := randomNF4Base(b)
	dir := b.TempDir()
	const onDisk = 20
	src := memSource{base: base, count: onDisk}
	for i := range onDisk {
		a, err := src.Load(context.Background(), "a"+strconv.Itoa(i))
		if err != nil {
			b.Fatal(err)
		}
		if err := lora.Save(dir+"/a"+strconv.Itoa(i), a); err != nil {
			b.Fatal(err)
		}
	}
	store := NewStore(Dir(dir), base, StoreOptions{})
	var lat []time.Duration
	i := 0
	for b.Loop() {
		name := "a" + strconv.Itoa(i%onDisk)
		store.Unload(name)
		start := time.Now()
		h, err := store.Acquire(context.Background(), name)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		h.Release()
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1e3, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1e3, "p99-ms")
}

// BenchmarkCacheMemory measures what a full 100-adapter cache adds to the
// resident set of a process holding a stories15M-shaped NF4 base, after
// 300 distinct adapters went through it (200 evicted). Metrics: the cache's
// own count of bytes, the RSS growth, and their ratio (1 is no overhead).
func BenchmarkCacheMemory(b *testing.B) {
	for b.Loop() {
		base := randomNF4Base(b)
		one, err := memSource{base: base, count: 1}.Load(context.Background(), "a0")
		if err != nil {
			b.Fatal(err)
		}
		size := 4 * one.NumParams()
		runtime.GC()
		debug.FreeOSMemory()
		before := readRSS(b)
		store := NewStore(memSource{base: base, count: 1000}, base, StoreOptions{MaxBytes: 100 * size})
		for i := range 300 {
			h, err := store.Acquire(context.Background(), "a"+strconv.Itoa(i))
			if err != nil {
				b.Fatal(err)
			}
			h.Release()
		}
		runtime.GC()
		debug.FreeOSMemory()
		after := readRSS(b)
		b.ReportMetric(float64(store.Used())/1e6, "cache-MB")
		b.ReportMetric(float64(after-before)/1e6, "rss-growth-MB")
		b.ReportMetric(float64(after-before)/float64(store.Used()), "rss/cache")
		b.ReportMetric(float64(after)/1e6, "rss-MB")
		runtime.KeepAlive(base)
	}
}

// readRSS returns the resident set size in bytes from /proc (Linux).
func readRSS(tb testing.TB) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skip("no /proc/self/status:", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Skip("no VmRSS")
	return 0
}

// BenchmarkBatchStepAdapters times one 32-row decode step of BatchedModel
// (every row one token, at positions 16 to 80) on a stories15M-shaped NF4
// base: the rows on no adapter (base), all on one (single), each on its own
// (mixed), adapters rank 8 on every block linear, float32 and binary16.
// The engine's scheduling is left out: what is left is the cost of the
// adapters' terms inside a step. Metrics: ms per step, CPU ms per step.
func BenchmarkBatchStepAdapters(b *testing.B) {
	base := randomNF4Base(b)
	const rows, prompt, steps = 32, 16, 64
	for _, prec := range []Precision{Float32, Float16} {
		store := NewStore(memSource{base: base, count: rows}, base, StoreOptions{Precision: prec})
		var ads []*Adapter
		for i := range rows {
			h, err := store.Acquire(context.Background(), "a"+strconv.Itoa(i))
			if err != nil {
				b.Fatal(err)
			}
			defer h.Release()
			ads = append(ads, h.Adapter())
		}
		for _, tc := range []string{"base", "single", "mixed"} {
			if prec == Float16 && tc == "base" {
				continue
			}
			b.Run(prec.String()+"/"+tc, func(b *testing.B) {
				m, err := NewBatchedModel(base)
				if err != nil {
					b.Fatal(err)
				}
				seqs := make([]Sequence, rows)
				rs := make([]Row, rows)
				for i := range rs {
					if seqs[i], err = m.NewSequence(prompt + steps); err != nil {
						b.Fatal(err)
					}
					rs[i] = Row{Seq: seqs[i], Logits: make([]float32, base.Config.VocabSize)}
					switch tc {
					case "single":
						rs[i].Adapter = ads[0]
					case "mixed":
						rs[i].Adapter = ads[i]
					}
				}
				toks := make([]int, prompt)
				for i := range toks {
					toks[i] = 3 + i*7
				}
				prefill := func() {
					for i := range rs {
						seqs[i].(*batchSeq).Reset()
						rs[i].Tokens = toks
					}
					if err := m.Step(rs); err != nil {
						b.Fatal(err)
					}
					for i := range rs {
						rs[i].Tokens = []int{5 + i}
					}
				}
				prefill()
				var cpu time.Duration
				for b.Loop() {
					if seqs[0].Pos() == prompt+steps {
						b.StopTimer()
						prefill()
						b.StartTimer()
					}
					c0 := cpuTime()
					if err := m.Step(rs); err != nil {
						b.Fatal(err)
					}
					cpu += cpuTime() - c0
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/step")
				b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/step")
			})
		}
	}
}
