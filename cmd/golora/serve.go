package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/golora/golora/jobs"
	"github.com/golora/golora/model"
	"github.com/golora/golora/model/chat"
	"github.com/golora/golora/serve"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var mf modelFlags
	mf.register(fs, "nf4")
	mf.registerChatTemplate(fs)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on; loopback unless you name another interface")
	name := fs.String("name", "", "model name of the base in requests (default: the model file or directory name, or stories260K)")
	adapters := fs.String("adapters", "", "directory of PEFT adapters, one subdirectory per adapter name; none when empty")
	var nf natsFlags
	nf.register(fs)
	adapterCache := fs.String("adapter-cache", "", "with --nats or --nats-embedded: directory for the adapter versions downloaded (default a temporary directory removed on exit)")
	cacheMB := fs.Int64("cache-mb", 1024, "memory for cached adapters, in MB")
	precision := fs.String("adapter-precision", "f16", "how cached adapters hold A and B: f16 (IEEE half precision, as vLLM holds adapters in the model's 16-bit type: half the memory and half the bytes a decode step reads per adapter, products still summed in float32; an adapter with a value beyond ±65504 is refused) or f32 (exact)")
	maxRunning := fs.Int("max-running", 32, "most requests in the running batch")
	kvTokens := fs.Int("kv-tokens", 0, "KV-cache budget in positions over running requests (0: max-running × the model's context)")
	maxTokens := fs.Int("max-tokens", 1024, "largest max_tokens a request may ask for")
	maxConcurrent := fs.Int("max-concurrent", 256, "most completions in progress (queued or running; each of a request's n choices counts); more get 429")
	maxChoices := fs.Int("max-choices", 16, "largest n (completions of one prompt) a request may ask for")
	timeout := fs.Duration("timeout", 5*time.Minute, "longest a completion may take, queueing included")
	grace := fs.Duration("shutdown-grace", 30*time.Second, "on interrupt, how long running requests may finish before they are cancelled")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: golora serve [flags]

Serves the base model and the adapters of --adapters with an OpenAI-compatible
API (POST /v1/completions, /v1/chat/completions with a chat template,
GET /v1/models and /v1/models/NAME, POST /v1/adapters/NAME/load and /unload,
GET /metrics).
Requests name an adapter in "model"; completions take n, logprobs and echo
(the prompt's logprobs: lm-evaluation-harness's loglikelihood). If the
environment variable GOLORA_API_KEY is set, every request must carry it as a
bearer token.

With --nats URL (or --nats-embedded DIR) the adapters are those golora worker
publishes to NATS JetStream: a name is its latest version, loaded on its first
request; a new version of a cached adapter is loaded while serving (running
requests finish with the version they started with), and the response header
Golora-Adapter-Version names the version used.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *adapters != "" && !flagSet(fs, "nats") {
		nf.url = "" // $NATS_URL does not override an explicit --adapters
	}
	useNATS := nf.url != "" || nf.embedded != ""
	if useNATS && *adapters != "" {
		return errors.New("give --adapters DIR or --nats/--nats-embedded, not both")
	}
	prec, err := serve.ParsePrecision(*precision)
	if err != nil {
		return fmt.Errorf("--adapter-precision: %w", err)
	}
	// The server offers no heap profile, so its allocations need not be
	// sampled: the profile's table of allocation stacks held about 0.3 MB
	// resident after a load test (examples/serveload).
	runtime.MemProfileRate = 0
	ck, err := mf.load(ctx, stderr)
	if err != nil {
		return err
	}
	// The base serves until the process ends: outside the Go heap it does
	// not set the garbage collector's headroom (see serve.MoveOffHeap).
	if _, err := serve.MoveOffHeap(ck.Weights); err != nil {
		return err
	}
	debug.FreeOSMemory() // the heap copies just dropped
	if *name == "" {
		*name = "stories260K"
		if mf.path != "" {
			*name = strings.TrimSuffix(filepath.Base(mf.path), filepath.Ext(mf.path))
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	metrics := serve.NewMetrics()
	var store *serve.Store
	if useNATS {
		conn, c, err := nf.connect(ctx, "golora serve", false)
		if err != nil {
			return err
		}
		defer conn.Close()
		cache := *adapterCache
		if cache == "" {
			if cache, err = os.MkdirTemp("", "golora-serve-adapters-"); err != nil {
				return err
			}
			defer os.RemoveAll(cache)
		}
		src := c.Adapters(cache)
		store = serve.NewStore(src.Serve(), ck.Weights, serve.StoreOptions{
			MaxBytes: *cacheMB << 20, Precision: prec, Events: metrics.StoreEvent,
		})
		hctx, stop := context.WithCancel(ctx)
		hotLoad := make(chan struct{})
		go func() {
			defer close(hotLoad)
			src.HotLoad(hctx, store, jobs.HotLoadOptions{Log: log})
		}()
		defer func() { stop(); <-hotLoad }()
		*adapters = "NATS " + nf.url + nf.embedded
	} else if *adapters != "" {
		if st, err := os.Stat(*adapters); err != nil || !st.IsDir() {
			return fmt.Errorf("--adapters %s: not a directory", *adapters)
		}
		store = serve.NewStore(serve.Dir(*adapters), ck.Weights, serve.StoreOptions{
			MaxBytes: *cacheMB << 20, Precision: prec, Events: metrics.StoreEvent,
		})
	}
	m, err := serve.NewBatchedModel(ck.Weights)
	if err != nil {
		return err
	}
	engine, err := serve.NewEngine(m, store, ck.Tokenizer, serve.EngineOptions{
		MaxRunning: *maxRunning, KVTokens: *kvTokens, Observer: metrics,
	})
	if err != nil {
		return err
	}
	tmpl, err := chatTemplate(ck, mf.chatTemplate, log)
	if err != nil {
		return err
	}
	handler := serve.NewServer(engine, serve.ServerOptions{
		BaseName: *name, MaxTokens: *maxTokens, MaxConcurrent: *maxConcurrent, MaxChoices: *maxChoices, Timeout: *timeout,
		APIKey: os.Getenv("GOLORA_API_KEY"), Logger: log, Metrics: metrics, Chat: tmpl,
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(stderr, "serving %s on http://%s/v1 (adapters: %s)\n", *name, ln.Addr(), *adapters)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", *grace)
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	// The engine finishes (or, after the grace period, cancels) what runs,
	// which lets the handlers return and the HTTP server close.
	engineErr := make(chan error, 1)
	go func() { engineErr <- engine.Shutdown(sctx) }()
	err = srv.Shutdown(sctx)
	if e := <-engineErr; e != nil && !errors.Is(e, context.DeadlineExceeded) {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
		err = nil
	}
	fmt.Fprintln(stdout, "stopped")
	return err
}

// chatTemplate returns the model's chat template called name (--chat-template;
// model.Base.ChatTemplateNamed: a Hugging Face directory's
// tokenizer_config.json or chat_template.jinja, a GGUF file's
// tokenizer.chat_template), or nil when it has no default one:
// /v1/chat/completions is then not served. A name other than the default
// that the model does not have is an error.
func chatTemplate(ck *model.Base, name string, log *slog.Logger) (*chat.Template, error) {
	tmpl, err := ck.ChatTemplateNamed(name)
	if err != nil && name != "" && name != chat.DefaultName {
		return nil, fmt.Errorf("--chat-template %s: %w", name, err)
	}
	if errors.Is(err, model.ErrNoChatTemplate) {
		return nil, nil
	}
	if err != nil {
		log.Info("no chat template: /v1/chat/completions is off", "reason", err)
		return nil, nil
	}
	return tmpl, nil
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
