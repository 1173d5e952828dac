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
// of realistic size (rank 8: 1 MB of float32 each).
//
// The server runs in a process of its own, as golora serve would: serveload
// writes the adapters, starts itself again with -serve DIR (which builds the
// base, the store, the engine and the HTTP server as golora serve does, and
// nothing else), drives it over loopback and asks it, on its standard input,
// for its memory. The memory report is the server process's resident set
// (/proc/PID of the server), split into the base's weights, the adapter
// cache and the rest, and says where the rest lives (the executable, the Go
// runtime, memory outside the Go heap): idle, settled (after a forced
// collection), at rest (after the engine's idle trim, nothing forced) and
// at its peak under load. -memprofile writes a heap profile of the server.
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
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/tokenizer"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/serve"
)

// options are serveload's flags.
type options struct {
	adapters, rank, cache, clients, requests, maxTokens, maxLoads int
	duration                                                      time.Duration
	baseShare                                                     float64
	url, base, precision, memProfile, smaps                       string
}

func main() {
	var o options
	flag.IntVar(&o.adapters, "adapters", 1000, "adapters to create and serve")
	flag.IntVar(&o.rank, "rank", 4, "rank of each adapter (all linear layers)")
	flag.IntVar(&o.cache, "cache", 100, "adapters the server's cache holds")
	flag.IntVar(&o.clients, "clients", 32, "concurrent clients")
	flag.IntVar(&o.requests, "requests", 512, "requests in all")
	flag.DurationVar(&o.duration, "duration", 2*time.Minute, "stop sending new requests after this long")
	flag.IntVar(&o.maxTokens, "max-tokens", 32, "max_tokens of each request")
	flag.Float64Var(&o.baseShare, "base-share", 0.1, "share of requests on the base model")
	flag.StringVar(&o.url, "url", "", "drive this running server (loopback only) instead of starting one")
	flag.StringVar(&o.base, "base", "stories260K", "base model: stories260K (embedded), or stories15M or stories110M (random weights of that shape)")
	flag.StringVar(&o.precision, "precision", "f16", "precision adapters are cached in: f16 (golora serve's default) or f32")
	flag.IntVar(&o.maxLoads, "max-loads", 0, "adapters the server reads at once (serve.StoreOptions.MaxLoads; 0: 4 × GOMAXPROCS)")
	flag.StringVar(&o.memProfile, "memprofile", "", "write a heap profile of the server process (what it allocated during the run, and what is live) to this file at the end")
	flag.StringVar(&o.smaps, "smaps", "", "the server process copies its /proc/self/smaps to PREFIX.N.QUERY at each memory reading (N counts them; QUERY is mem, gc, watch or peak: the last mem is the one at rest)")
	serveDir := flag.String("serve", "", "be the server process: serve the adapters of this directory on loopback and answer memory queries on standard input (serveload starts itself so)")
	cacheBytes := flag.Int64("cache-bytes", 0, "with -serve: the adapter cache's size in bytes")
	flag.Parse()
	var err error
	if *serveDir != "" {
		err = serveProcess(*serveDir, *cacheBytes, o)
	} else {
		err = run(o)
	}
	if err != nil {
		log.Fatal(err)
	}
}

func run(o options) error {
	baseName := o.base
	target := o.url
	var srv *server
	if target == "" {
		ck, err := loadBase(o.base)
		if err != nil {
			return err
		}
		prec, err := serve.ParsePrecision(o.precision)
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
		for i := range o.adapters {
			cfg := lora.DefaultConfig()
			cfg.R, cfg.Alpha = o.rank, float64(2*o.rank)
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
			o.adapters, o.rank, float64(one)/1e3, o.precision, time.Since(start).Round(time.Millisecond))
		if srv, err = startServer(dir, int64(o.cache)*one, o); err != nil {
			return err
		}
		defer srv.stop()
		target = "http://" + srv.addr
	} else if err := checkLoopback(target); err != nil {
		return err
	}
	var idle memReport
	if srv != nil {
		var err error
		if idle, err = srv.ask("mem"); err != nil {
			return err
		}
		fmt.Printf("memory of the server process (pid %d; its resident set from /proc/%d/status, split by /proc/%d/smaps and its Go runtime's statistics)\n",
			srv.cmd.Process.Pid, srv.cmd.Process.Pid, srv.cmd.Process.Pid)
		fmt.Printf("idle server (base loaded, no request yet): RSS %.1f MB = %s\n  %s\n", mb(idle.RSS), idle.split(idle.RSS), idle.Breakdown)
		if _, err := srv.ask("watch"); err != nil {
			return err
		}
	}
	fmt.Printf("driving %s: %d clients, %d requests (at most %v), max_tokens %d, %.0f%% on the base\n",
		target, o.clients, o.requests, o.duration, o.maxTokens, 100*o.baseShare)

	type result struct {
		ttft, total time.Duration
		tokens      int
		err         error
	}
	var mu sync.Mutex
	var results []result
	jobs := make(chan int)
	deadline := time.Now().Add(o.duration)
	go func() {
		for i := range o.requests {
			if time.Now().After(deadline) {
				break
			}
			jobs <- i
		}
		close(jobs)
	}()
	client := &http.Client{Timeout: o.duration + time.Minute}
	start := time.Now()
	var wg sync.WaitGroup
	for c := range o.clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for range jobs {
				name := baseName
				if rng.Float64() >= o.baseShare {
					name = fmt.Sprintf("a%d", rng.IntN(o.adapters))
				}
				ttft, total, tokens, err := complete(client, target, name, o.maxTokens, rng.Int64())
				mu.Lock()
				results = append(results, result{ttft, total, tokens, err})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var peak memReport
	if srv != nil {
		var err error
		if peak, err = srv.ask("peak"); err != nil {
			return err
		}
	}

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
	if srv != nil {
		fmt.Printf("adapter cache: %d adapters, %.1f MB\n", peak.Cached, mb(peak.CacheBytes))
	}
	if body, err := get(target + "/metrics"); err == nil {
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "golora_adapter_cache_events_total") || strings.HasPrefix(line, "golora_batch_size_sum") || strings.HasPrefix(line, "golora_batch_size_count") {
				fmt.Println(" ", line)
			}
		}
	}
	if srv == nil {
		return nil
	}
	fmt.Printf("memory right after the load: RSS %.1f MB, Go heap in use %.1f MB\n", mb(peak.RSS), mb(peak.HeapInuse))
	// The garbage of the run (adapters read and evicted, finished requests'
	// buffers) collected and returned at the load generator's request: what
	// the server holds, base and cache included, with the requests done.
	settled, err := srv.ask("gc")
	if err != nil {
		return err
	}
	fmt.Printf("memory settled (a forced GC, requests done): RSS %.1f MB = %s; Go heap in use %.1f MB\n  %s\n",
		mb(settled.RSS), settled.split(settled.RSS), mb(settled.HeapInuse), settled.Breakdown)
	// Once idle for its trim delay (half a second), the engine frees what it
	// keeps for the next burst (closed KV caches, request buffers, the
	// batch's scratch) and returns it to the system; nothing is forced here.
	time.Sleep(time.Second)
	rested, err := srv.ask("mem")
	if err != nil {
		return err
	}
	fmt.Printf("memory at rest (1 s idle: the engine has trimmed; no GC forced): RSS %.1f MB = %s; Go heap in use %.1f MB\n  %s\n",
		mb(rested.RSS), rested.split(rested.RSS), mb(rested.HeapInuse), rested.Breakdown)
	fmt.Printf("growth from the idle server: %.1f MB for %.1f MB of cached adapters (%.2f×)\n",
		mb(settled.RSS-idle.RSS), mb(settled.CacheBytes), float64(settled.RSS-idle.RSS)/float64(settled.CacheBytes))
	fmt.Printf("memory peak under load (VmHWM, reset when the load began): RSS %.1f MB = %s\n", mb(peak.Peak), peak.split(peak.Peak))
	at := peak.PeakAt
	fmt.Printf("  at the highest RSS sampled (%.1f MB, every 10 ms): Go runtime %.1f MB (heap objects %.1f, free heap not returned %.1f), the rest (binary, base, adapters, KV caches, loads in flight) %.1f MB\n",
		mb(at.RSS), mb(at.GoHeld), mb(at.HeapObjects), mb(at.HeapFree), mb(at.RSS-at.GoHeld))
	return nil
}

// memReport is the server process's memory, as it reports it on its
// standard output (a JSON line per query).
type memReport struct {
	RSS, Peak  int64 // VmRSS and VmHWM, bytes
	HeapInuse  int64
	Breakdown  string
	BaseBytes  int64 // the base's weights
	CacheBytes int64 // the adapter cache's
	Cached     int   // adapters in the cache
	PeakAt     sample
}

// split says how rss divides into the base's weights, the adapter cache
// and the rest.
func (r memReport) split(rss int64) string {
	rest := rss - r.BaseBytes - r.CacheBytes
	return fmt.Sprintf("base weights %.1f MB + adapter cache %.1f MB + the rest %.1f MB (%.1f%% of base + cache)",
		mb(r.BaseBytes), mb(r.CacheBytes), mb(rest), 100*float64(rest)/float64(r.BaseBytes+r.CacheBytes))
}

// server is the server process serveload started.
type server struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *json.Decoder
	addr string
}

// startServer starts this executable with -serve dir: the server, in a
// process of its own, so that its memory is not the load generator's nor
// that of the code that wrote the adapters.
func startServer(dir string, cacheBytes int64, o options) (*server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve", dir, "-cache-bytes", strconv.FormatInt(cacheBytes, 10), "-base", o.base,
		"-precision", o.precision, "-clients", strconv.Itoa(o.clients), "-max-loads", strconv.Itoa(o.maxLoads), "-memprofile", o.memProfile, "-smaps", o.smaps)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, in: in, out: json.NewDecoder(out)}
	var hello struct{ Addr string }
	if err := s.out.Decode(&hello); err != nil {
		s.stop()
		return nil, fmt.Errorf("server process: %w", err)
	}
	s.addr = hello.Addr
	return s, nil
}

// ask sends a query (mem, gc, watch, peak: see serveProcess) and returns the
// server's answer.
func (s *server) ask(query string) (memReport, error) {
	var r memReport
	if _, err := fmt.Fprintln(s.in, query); err != nil {
		return r, fmt.Errorf("server process: %w", err)
	}
	if err := s.out.Decode(&r); err != nil {
		return r, fmt.Errorf("server process: answer to %s: %w", query, err)
	}
	return r, nil
}

// stop closes the server's standard input, on which it shuts down, and
// waits for it to exit.
func (s *server) stop() error {
	s.in.Close()
	return s.cmd.Wait()
}

// serveProcess is the server process: it builds the base, the adapter store
// on dir, the engine and the HTTP server as golora serve does, prints its
// address as a JSON line, and answers each query line on its standard input
// with a memReport line: "mem" (its memory now), "gc" (after a forced
// collection that returns free memory to the system), "watch" (resets the
// peak resident set and samples it every 10 ms), "peak" (the peak since
// "watch", with the sample of the highest resident set). It shuts down when
// its standard input closes.
func serveProcess(dir string, cacheBytes int64, o options) error {
	// As golora serve, which offers no heap profile: without -memprofile
	// the allocations are not sampled, and the profile's table of stacks
	// takes no memory.
	runtime.MemProfileRate = 0
	if o.memProfile != "" {
		runtime.MemProfileRate = 64 << 10
	}
	ck, err := loadBase(o.base)
	if err != nil {
		return err
	}
	if err := ck.Weights.Quantize(context.Background(), nf4.Quantizer(nf4.Options{})); err != nil {
		return err
	}
	baseBytes := ck.Weights.WeightBytes().Total()
	if _, err := serve.MoveOffHeap(ck.Weights); err != nil {
		return err
	}
	debug.FreeOSMemory() // the heap copies just dropped, as golora serve does
	prec, err := serve.ParsePrecision(o.precision)
	if err != nil {
		return fmt.Errorf("-precision: %w", err)
	}
	metrics := serve.NewMetrics()
	store := serve.NewStore(serve.Dir(dir), ck.Weights, serve.StoreOptions{MaxBytes: cacheBytes, Precision: prec, MaxLoads: o.maxLoads, Events: metrics.StoreEvent})
	m, err := serve.NewBatchedModel(ck.Weights)
	if err != nil {
		return err
	}
	engine, err := serve.NewEngine(m, store, ck.Tokenizer, serve.EngineOptions{MaxRunning: o.clients, Observer: metrics})
	if err != nil {
		return err
	}
	defer engine.Shutdown(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := &http.Server{Handler: serve.NewServer(engine, serve.ServerOptions{BaseName: o.base, Metrics: metrics, Logger: quiet})}
	go srv.Serve(ln)
	defer srv.Close()
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(struct{ Addr string }{ln.Addr().String()}); err != nil {
		return err
	}
	var stopWatch func() sample
	proc := newProcReader()
	sc := bufio.NewScanner(os.Stdin)
	for n := 0; sc.Scan(); n++ {
		r := memReport{BaseBytes: baseBytes}
		q := sc.Text()
		switch q {
		case "mem":
		case "gc":
			runtime.GC()
			debug.FreeOSMemory()
		case "watch":
			// Linux resets VmHWM to the current resident set on "5".
			if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
				return fmt.Errorf("resetting the peak resident set: %w", err)
			}
			stopWatch = watchPeak()
		case "peak":
			if stopWatch == nil {
				return errors.New("peak without watch")
			}
			r.PeakAt, stopWatch = stopWatch(), nil
		default:
			return fmt.Errorf("unknown query %q", q)
		}
		// The resident set and the Go runtime's statistics first: what
		// follows allocates, and that garbage is the reading's, not the
		// server's.
		r.RSS, r.Peak = proc.status("VmRSS:")<<10, proc.status("VmHWM:")<<10
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		r.HeapInuse = int64(ms.HeapInuse)
		r.CacheBytes, r.Cached = store.Used(), len(store.Cached())
		r.Breakdown = proc.breakdown(&ms)
		if o.smaps != "" {
			if err := copySmaps(fmt.Sprintf("%s.%d.%s", o.smaps, n, q)); err != nil {
				return err
			}
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	if o.memProfile != "" {
		writeHeapProfile(o.memProfile)
	}
	return sc.Err()
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

// procReader reads the server process's /proc files through one buffer,
// allocated once: the process it measures would otherwise hold their
// garbage (the whole of smaps as strings, a hundred kilobytes spread over
// many spans) until its next collection, and its heap readings would count
// it.
type procReader struct{ r *bufio.Reader }

func newProcReader() *procReader { return &procReader{bufio.NewReaderSize(nil, 4096)} }

// status returns the number of a field of /proc/self/status (VmRSS and
// VmHWM in kB, Threads), 0 where there is none (not Linux).
func (p *procReader) status(field string) int64 {
	v := int64(0)
	p.eachLine("/proc/self/status", func(line []byte) {
		if rest, ok := bytes.CutPrefix(line, []byte(field)); ok {
			v = leadingInt(bytes.TrimSpace(rest))
		}
	})
	return v
}

// eachLine calls f with each line of the file at path (without its
// newline; a line longer than the buffer comes in pieces).
func (p *procReader) eachLine(path string, f func(line []byte)) {
	file, err := os.Open(path)
	if err != nil {
		return
	}
	defer file.Close()
	p.r.Reset(file)
	defer p.r.Reset(nil)
	for {
		line, err := p.r.ReadSlice('\n')
		if len(line) > 0 {
			f(bytes.TrimSuffix(line, []byte("\n")))
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// leadingInt parses the decimal digits at the start of b.
func leadingInt(b []byte) int64 {
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		v = 10*v + int64(c-'0')
	}
	return v
}

// breakdown splits the resident set by where it lives: the executable's
// mappings, other files, and anonymous memory — the Go runtime's (its heap
// in use, free heap spans not yet returned, stacks and metadata, from ms,
// read before anything of the reading was allocated) and the rest, which is
// memory outside the Go heap (the base, the adapter cache and the KV caches
// live there).
func (p *procReader) breakdown(ms *runtime.MemStats) string {
	exe, _ := os.Executable()
	var binary, files, anon int64
	path := []byte(nil)
	p.eachLine("/proc/self/smaps", func(line []byte) {
		if rss, ok := bytes.CutPrefix(line, []byte("Rss:")); ok {
			kb := leadingInt(bytes.TrimSpace(rss))
			switch {
			case string(path) == exe:
				binary += kb << 10
			case len(path) == 0 || path[0] == '[':
				anon += kb << 10
			default:
				files += kb << 10
			}
			return
		}
		// A mapping's first line: "start-end perms offset dev inode [path]";
		// its other lines start with a "Name:".
		first, _, _ := bytes.Cut(line, []byte(" "))
		if !bytes.Contains(first, []byte("-")) || bytes.HasSuffix(first, []byte(":")) {
			return
		}
		rest := line
		for range 5 {
			_, rest, _ = bytes.Cut(bytes.TrimLeft(rest, " "), []byte(" "))
		}
		path = append(path[:0], bytes.TrimSpace(rest)...)
	})
	if binary+files+anon == 0 {
		return "(no /proc/self/smaps)"
	}
	goHeld := ms.HeapInuse + ms.HeapIdle - ms.HeapReleased + ms.StackInuse + ms.MSpanSys + ms.MCacheSys + ms.GCSys + ms.OtherSys + ms.BuckHashSys
	return fmt.Sprintf("binary %.1f MB, other files %.1f MB, anonymous %.1f MB: Go runtime at most %.1f MB (heap in use %.1f of which objects %.1f, free heap not returned %.1f, stacks %.1f, metadata %.1f), outside the Go heap at least %.1f MB; %d threads",
		mb(binary), mb(files), mb(anon), mb(int64(goHeld)), mb(int64(ms.HeapInuse)), mb(int64(ms.HeapAlloc)), mb(int64(ms.HeapIdle-ms.HeapReleased)), mb(int64(ms.StackInuse)),
		mb(int64(ms.MSpanSys+ms.MCacheSys+ms.GCSys+ms.OtherSys+ms.BuckHashSys)), mb(anon-int64(goHeld)), p.status("Threads:"))
}

// copySmaps writes the process's /proc/self/smaps to path, for a reading
// of each mapping (-smaps).
func copySmaps(path string) error {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return fmt.Errorf("-smaps: %w", err)
	}
	return os.WriteFile(path, b, 0o644)
}

// sample is the memory of the process at one moment.
type sample struct{ RSS, GoHeld, HeapObjects, HeapFree int64 }

// watchPeak samples the resident set every 10 ms until the returned function
// is called, which returns the sample of the highest resident set. It runs
// in the measured process, so it allocates nothing per sample: it re-reads
// /proc/self/statm into a fixed buffer, and runtime/metrics (which does not
// stop the world) into fixed samples.
func watchPeak() func() sample {
	stop, done := make(chan struct{}), make(chan sample)
	statm, err := os.Open("/proc/self/statm")
	if err != nil {
		return func() sample { return sample{} }
	}
	var buf [256]byte
	page := int64(os.Getpagesize())
	resident := func() int64 { // statm's second field, in pages
		n, _ := statm.ReadAt(buf[:], 0)
		_, rest, _ := bytes.Cut(buf[:n], []byte(" "))
		return leadingInt(rest) * page
	}
	go func() {
		defer statm.Close()
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
			rss := resident()
			if rss <= best.RSS {
				continue
			}
			metrics.Read(ms)
			best = sample{RSS: rss, GoHeld: int64(ms[0].Value.Uint64() - ms[1].Value.Uint64()),
				HeapObjects: int64(ms[2].Value.Uint64()), HeapFree: int64(ms[3].Value.Uint64())}
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
