// Command serveload serves many customers from one base: it writes 1,000
// small LoRA adapters for the embedded stories260K model, serves them with
// golora's OpenAI-compatible server on loopback (a 100-adapter cache), and
// drives it with a bounded load generator: concurrent streaming clients, each
// request on a random adapter. It prints throughput, latency percentiles
// (time to first token and whole request), adapter cache events and memory.
//
//	go run ./examples/serveload [-adapters 1000] [-cache 100] [-clients 32] [-requests 512] [-duration 2m]
//
// With -base stories15M the base is a stories15M-shaped model (dim 288, 6
// layers, vocabulary 32000) with random weights in NF4 and a made-up
// 32000-piece tokenizer: the shape of the benchmarks, with adapters
// of realistic size (rank 8: 1 MB of float32 each). The memory report then
// splits the resident set into the base's weights, the adapter cache and
// the rest, and says where the rest lives (the executable, the Go runtime,
// memory outside the Go heap), at rest and at the highest resident set
// sampled under load. -memprofile writes a heap profile of the run.
//
// With -url it drives a running server instead (golora serve --adapters DIR),
// which must listen on loopback; adapters are then named a0 … a<N-1>.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/tokenizer"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/serve"
)

func main() {
	adapters := flag.Int("adapters", 1000, "adapters to create and serve")
	rank := flag.Int("rank", 4, "rank of each adapter (all linear layers)")
	cache := flag.Int("cache", 100, "adapters the server's cache holds")
	clients := flag.Int("clients", 32, "concurrent clients")
	requests := flag.Int("requests", 512, "requests in all")
	duration := flag.Duration("duration", 2*time.Minute, "stop sending new requests after this long")
	maxTokens := flag.Int("max-tokens", 32, "max_tokens of each request")
	baseShare := flag.Float64("base-share", 0.1, "share of requests on the base model")
	target := flag.String("url", "", "drive this running server (loopback only) instead of starting one")
	baseFlag := flag.String("base", "stories260K", "base model: stories260K (embedded), or stories15M or stories110M (random weights of that shape)")
	precision := flag.String("precision", "f32", "precision adapters are cached in: f32 or f16")
	maxLoads := flag.Int("max-loads", 0, "adapters the server reads at once (serve.StoreOptions.MaxLoads; 0: 4 × GOMAXPROCS)")
	memProfile := flag.String("memprofile", "", "write a heap profile (what was allocated during the run, and what is live) to this file at the end")
	flag.Parse()
	if *memProfile != "" {
		runtime.MemProfileRate = 64 << 10
		defer writeHeapProfile(*memProfile)
	}
	if err := run(*adapters, *rank, *cache, *clients, *requests, *duration, *maxTokens, *baseShare, *target, *baseFlag, *precision, *maxLoads); err != nil {
		log.Fatal(err)
	}
}

func run(nAdapters, rank, cacheN, clients, requests int, duration time.Duration, maxTokens int, baseShare float64, target, baseModel, precision string, maxLoads int) error {
	baseName := baseModel
	var store *serve.Store
	var baseBytes int64
	if target == "" {
		ck, err := loadBase(baseModel)
		if err != nil {
			return err
		}
		if err := ck.Weights.Quantize(context.Background(), nf4.Quantizer(nf4.Options{})); err != nil {
			return err
		}
		baseBytes = ck.Weights.WeightBytes().Total()
		if _, err := serve.MoveOffHeap(ck.Weights); err != nil {
			return err
		}
		prec, err := serve.ParsePrecision(precision)
		if err != nil {
			return fmt.Errorf("-precision: %w", err)
		}
		dir, err := os.MkdirTemp("", "serveload-adapters")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		start := time.Now()
		var one int64
		for i := range nAdapters {
			cfg := lora.DefaultConfig()
			cfg.R, cfg.Alpha = rank, float64(2*rank)
			cfg.TargetModules = lora.ModuleRegex(lora.AllLinear)
			cfg.InitLoRAWeights = lora.InitLinearDefault
			a, err := lora.New(ck.Weights, cfg, uint64(i+1))
			if err != nil {
				return err
			}
			if err := lora.Save(filepath.Join(dir, fmt.Sprintf("a%d", i)), a); err != nil {
				return err
			}
			one = 4 * a.NumParams()
			if prec == serve.Float16 {
				one /= 2
			}
		}
		fmt.Printf("wrote %d adapters (rank %d, all linear layers, %.0f KB each cached in %s) in %v\n",
			nAdapters, rank, float64(one)/1e3, precision, time.Since(start).Round(time.Millisecond))
		metrics := serve.NewMetrics()
		store = serve.NewStore(serve.Dir(dir), ck.Weights, serve.StoreOptions{MaxBytes: int64(cacheN) * one, Precision: prec, MaxLoads: maxLoads, Events: metrics.StoreEvent})
		m, err := serve.NewBatchedModel(ck.Weights)
		if err != nil {
			return err
		}
		engine, err := serve.NewEngine(m, store, ck.Tokenizer, serve.EngineOptions{MaxRunning: clients, Observer: metrics})
		if err != nil {
			return err
		}
		defer engine.Shutdown(context.Background())
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		srv := &http.Server{Handler: serve.NewServer(engine, serve.ServerOptions{BaseName: baseName, Metrics: metrics, Logger: quiet})}
		go srv.Serve(ln)
		defer srv.Close()
		target = "http://" + ln.Addr().String()
	} else if err := checkLoopback(target); err != nil {
		return err
	}
	runtime.GC()
	debug.FreeOSMemory()
	idle := procStatus("VmRSS:")
	if store != nil {
		fmt.Printf("idle server (base loaded, no request yet): RSS %.1f MB\n  %s\n", float64(idle)/1e6, breakdown())
	}
	fmt.Printf("driving %s: %d clients, %d requests (at most %v), max_tokens %d, %.0f%% on the base\n",
		target, clients, requests, duration, maxTokens, 100*baseShare)

	type result struct {
		ttft, total time.Duration
		tokens      int
		err         error
	}
	var mu sync.Mutex
	var results []result
	jobs := make(chan int)
	deadline := time.Now().Add(duration)
	go func() {
		for i := range requests {
			if time.Now().After(deadline) {
				break
			}
			jobs <- i
		}
		close(jobs)
	}()
	client := &http.Client{Timeout: duration + time.Minute}
	watch := watchPeak()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for range jobs {
				name := baseName
				if rng.Float64() >= baseShare {
					name = fmt.Sprintf("a%d", rng.IntN(nAdapters))
				}
				ttft, total, tokens, err := complete(client, target, name, maxTokens, rng.Int64())
				mu.Lock()
				results = append(results, result{ttft, total, tokens, err})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	peakAt := watch()
	elapsed := time.Since(start)

	var ttfts, totals []time.Duration
	tokens, failed := 0, 0
	var firstErr error
	for _, r := range results {
		if r.err != nil {
			failed++
			firstErr = cmpErr(firstErr, r.err)
			continue
		}
		ttfts = append(ttfts, r.ttft)
		totals = append(totals, r.total)
		tokens += r.tokens
	}
	fmt.Printf("%d requests in %v: %d ok, %d failed\n", len(results), elapsed.Round(time.Millisecond), len(results)-failed, failed)
	if firstErr != nil {
		fmt.Println("first error:", firstErr)
	}
	fmt.Printf("throughput: %.1f requests/s, %.0f generated tokens/s\n", float64(len(results)-failed)/elapsed.Seconds(), float64(tokens)/elapsed.Seconds())
	fmt.Printf("time to first token: %s\n", percentiles(ttfts))
	fmt.Printf("request latency:     %s\n", percentiles(totals))
	if store != nil {
		fmt.Printf("adapter cache: %d adapters, %.1f MB\n", len(store.Cached()), float64(store.Used())/1e6)
	}
	if body, err := get(target + "/metrics"); err == nil {
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "golora_adapter_cache_events_total") || strings.HasPrefix(line, "golora_batch_size_sum") || strings.HasPrefix(line, "golora_batch_size_count") {
				fmt.Println(" ", line)
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rssBytes, peak := procStatus("VmRSS:"), procStatus("VmHWM:")
	fmt.Printf("memory under load: RSS %.1f MB (peak %.1f MB), Go heap in use %.1f MB\n", float64(rssBytes)/1e6, float64(peak)/1e6, float64(ms.HeapInuse)/1e6)
	if store != nil && rssBytes > 0 {
		// The garbage of the run (adapters read and evicted, finished
		// requests' KV caches) collected and returned: what the server
		// holds, base and cache included, with the requests done.
		runtime.GC()
		debug.FreeOSMemory()
		settled := procStatus("VmRSS:")
		used := store.Used()
		split := func(rss int64) string {
			rest := rss - baseBytes - used
			return fmt.Sprintf("base weights %.1f MB + adapter cache %.1f MB + the rest %.1f MB (%.1f%% of base + cache)",
				float64(baseBytes)/1e6, float64(used)/1e6, float64(rest)/1e6, 100*float64(rest)/float64(baseBytes+used))
		}
		runtime.ReadMemStats(&ms)
		fmt.Printf("memory settled (GC, requests done): RSS %.1f MB = %s; Go heap in use %.1f MB\n  %s\n", float64(settled)/1e6, split(settled), float64(ms.HeapInuse)/1e6, breakdown())
		// Once idle for its trim delay (half a second), the engine frees
		// what it keeps for the next burst: closed KV caches, request
		// buffers, the batch's scratch.
		time.Sleep(time.Second)
		runtime.GC()
		debug.FreeOSMemory()
		rested := procStatus("VmRSS:")
		runtime.ReadMemStats(&ms)
		fmt.Printf("memory at rest (1 s idle: the engine has trimmed): RSS %.1f MB = %s; Go heap in use %.1f MB\n  %s\n", float64(rested)/1e6, split(rested), float64(ms.HeapInuse)/1e6, breakdown())
		fmt.Printf("growth from the idle server: %.1f MB for %.1f MB of cached adapters (%.2f×)\n",
			float64(settled-idle)/1e6, float64(used)/1e6, float64(settled-idle)/float64(used))
		fmt.Printf("memory peak: RSS %.1f MB = %s\n", float64(peak)/1e6, split(peak))
		fmt.Printf("  at the highest RSS sampled (%.1f MB, every 10 ms): Go runtime %.1f MB (heap objects %.1f, free heap not returned %.1f), the rest (binary, base, adapters, KV caches, loads in flight) %.1f MB\n",
			mb(peakAt.rss), mb(peakAt.goHeld), mb(peakAt.heapObjects), mb(peakAt.heapFree), mb(peakAt.rss-peakAt.goHeld))
	}
	return nil
}

// loadBase returns the embedded stories260K or a stories15M- or
// stories110M-shaped model with random weights (the scale of a fresh LLaMA)
// and a 32000-piece tokenizer made up for it: 3 control pieces, the 256
// bytes, then pieces "▁w<n>".
func loadBase(name string) (*model.Base, error) {
	if name == "stories260K" {
		return model.Default()
	}
	c := model.Config{
		Dim: 288, HiddenDim: 768, Layers: 6, Heads: 6, KVHeads: 6, HeadDim: 48,
		VocabSize: 32000, MaxSeqLen: 256, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true,
	}
	switch name {
	case "stories15M":
	case "stories110M":
		c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.MaxSeqLen = 768, 2048, 12, 12, 12, 64, 1024
	default:
		return nil, fmt.Errorf("-base %q: want stories260K, stories15M or stories110M", name)
	}
	w := model.RandomWeights(c, 15)
	pieces := []string{"<unk>", "<s>", "</s>"}
	for b := range 256 {
		pieces = append(pieces, fmt.Sprintf("<0x%02X>", b))
	}
	for len(pieces) < c.VocabSize {
		pieces = append(pieces, fmt.Sprintf("\u2581w%d", len(pieces)))
	}
	tok, err := tokenizer.NewSentencePiece(pieces, make([]float32, len(pieces)), nil, 1, 2)
	if err != nil {
		return nil, err
	}
	return &model.Base{Weights: w, Tokenizer: tok}, nil
}

// complete sends one streaming completion and times it.
func complete(client *http.Client, target, name string, maxTokens int, seed int64) (ttft, total time.Duration, tokens int, err error) {
	body, _ := json.Marshal(map[string]any{
		"model": name, "prompt": "Once upon a time", "max_tokens": maxTokens, "temperature": 0.8, "seed": seed,
		"stream": true, "stream_options": map[string]bool{"include_usage": true},
	})
	start := time.Now()
	resp, err := client.Post(target+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, 0, 0, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			return ttft, time.Since(start), tokens, nil
		}
		var chunk struct {
			Choices []struct{ Text string }
			Usage   *struct {
				CompletionTokens int `json:"completion_tokens"`
			}
			Error *struct{ Message string }
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return 0, 0, 0, err
		}
		if chunk.Error != nil {
			return 0, 0, 0, errors.New(chunk.Error.Message)
		}
		if ttft == 0 && len(chunk.Choices) > 0 && chunk.Choices[0].Text != "" {
			ttft = time.Since(start)
		}
		if chunk.Usage != nil {
			tokens = chunk.Usage.CompletionTokens
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, 0, err
	}
	return 0, 0, 0, errors.New("stream ended without [DONE]")
}

func percentiles(d []time.Duration) string {
	if len(d) == 0 {
		return "no data"
	}
	slices.Sort(d)
	p := func(q float64) time.Duration {
		return d[min(len(d)-1, int(q*float64(len(d))))].Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %v  p90 %v  p99 %v  max %v", p(0.5), p(0.9), p(0.99), d[len(d)-1].Round(100*time.Microsecond))
}

func get(u string) (string, error) {
	resp, err := http.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// procStatus returns a size field of /proc/self/status (VmRSS, VmHWM) in
// bytes, 0 where there is none (not Linux).
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

// breakdown splits the resident set by where it lives: the executable's
// mappings, other files, and anonymous memory — the Go runtime's (its heap
// in use, free heap spans not yet returned, stacks and metadata) and the
// rest, which is memory outside the Go heap (the base, the adapter cache and
// the KV caches live there).
func breakdown() string {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return "(no /proc/self/smaps)"
	}
	exe, _ := os.Executable()
	var binary, files, anon int64
	path := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			path = ""
			if len(f) >= 6 {
				path = f[5]
			}
		case len(f) >= 2 && f[0] == "Rss:":
			var kb int64
			fmt.Sscanf(f[1], "%d", &kb)
			switch {
			case path == exe:
				binary += kb << 10
			case path == "" || strings.HasPrefix(path, "["):
				anon += kb << 10
			default:
				files += kb << 10
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	goHeld := ms.HeapInuse + ms.HeapIdle - ms.HeapReleased + ms.StackInuse + ms.MSpanSys + ms.MCacheSys + ms.GCSys + ms.OtherSys + ms.BuckHashSys
	return fmt.Sprintf("binary %.1f MB, other files %.1f MB, anonymous %.1f MB: Go runtime at most %.1f MB (heap in use %.1f, free heap not returned %.1f, stacks %.1f, metadata %.1f), outside the Go heap at least %.1f MB",
		mb(binary), mb(files), mb(anon), mb(int64(goHeld)), mb(int64(ms.HeapInuse)), mb(int64(ms.HeapIdle-ms.HeapReleased)), mb(int64(ms.StackInuse)),
		mb(int64(ms.MSpanSys+ms.MCacheSys+ms.GCSys+ms.OtherSys+ms.BuckHashSys)), mb(anon-int64(goHeld)))
}

// sample is the memory of the process at one moment.
type sample struct{ rss, goHeld, heapObjects, heapFree int64 }

// watchPeak samples the resident set every 10 ms until the returned function
// is called, which returns the sample of the highest resident set. It reads
// runtime/metrics, which does not stop the world.
func watchPeak() func() sample {
	stop, done := make(chan struct{}), make(chan sample)
	go func() {
		ms := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"},
			{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/free:bytes"}}
		var best sample
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- best
				return
			case <-tick.C:
			}
			rss := procStatus("VmRSS:")
			if rss <= best.rss {
				continue
			}
			metrics.Read(ms)
			best = sample{rss: rss, goHeld: int64(ms[0].Value.Uint64() - ms[1].Value.Uint64()),
				heapObjects: int64(ms[2].Value.Uint64()), heapFree: int64(ms[3].Value.Uint64())}
		}
	}()
	return func() sample { close(stop); return <-done }
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// writeHeapProfile writes the heap profile to path (go tool pprof
// -sample_index=alloc_space shows what the run allocated).
func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		log.Print(err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		log.Print(err)
	}
}

// checkLoopback refuses a target that is not on this machine: the load
// generator must not load anyone else's server.
func checkLoopback(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-url %s: only loopback targets (127.0.0.1, ::1, localhost) are allowed", target)
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
