package serve

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/golora/golora/model/infer"
)

// Metrics are the server's Prometheus metrics. It implements Observer for
// the engine, and its StoreEvent method is the store's Events hook.
type Metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	tokens     *prometheus.CounterVec
	finished   *prometheus.CounterVec
	batchRows  prometheus.Histogram
	stepTokens prometheus.Histogram
	stepTime   prometheus.Histogram
	queueTime  prometheus.Histogram
	ttft       prometheus.Histogram
	cache      *prometheus.CounterVec
	fallbacks  prometheus.Counter
}

// NewMetrics creates the metrics and registers them in a registry of their
// own (Registry), with the Go runtime and process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	latency := prometheus.ExponentialBuckets(0.001, 2, 16) // 1 ms … 33 s
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "golora_http_requests_total", Help: "HTTP requests by route (the endpoint's path pattern, \"other\" for none) and status code.",
		}, []string{"path", "code"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "golora_tokens_total", Help: "Tokens processed, by kind (prompt, completion).",
		}, []string{"kind"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "golora_completions_total", Help: "Completions ended, by reason (eos, length, stop, error, cancelled).",
		}, []string{"reason"}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "golora_batch_size", Help: "Requests in each forward step.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}),
		stepTokens: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "golora_step_tokens", Help: "Tokens in each forward step (decoded tokens and prompt chunks).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		stepTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "golora_step_seconds", Help: "Duration of each forward step.", Buckets: latency,
		}),
		queueTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "golora_queue_seconds", Help: "Time from a request's arrival to its entry into the batch.", Buckets: latency,
		}),
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "golora_time_to_first_token_seconds", Help: "Time from a request's arrival to its first token.", Buckets: latency,
		}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "golora_adapter_cache_events_total", Help: "Adapter cache events: hit, miss, evict, load_error.",
		}, []string{"event"}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "golora_adapter_pool_fallbacks_total",
			Help: "Adapters loaded into a mapping of their own, on small pages, because the cache's shared pool of huge pages had no free range for them.",
		}),
	}
	reg.MustRegister(m.requests, m.tokens, m.finished, m.batchRows, m.stepTokens, m.stepTime, m.queueTime, m.ttft, m.cache, m.fallbacks,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry the metrics are in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Step implements Observer.
func (m *Metrics) Step(rows, tokens int, d time.Duration) {
	m.batchRows.Observe(float64(rows))
	m.stepTokens.Observe(float64(tokens))
	m.stepTime.Observe(d.Seconds())
}

// Admitted implements Observer.
func (m *Metrics) Admitted(d time.Duration) { m.queueTime.Observe(d.Seconds()) }

// FirstToken implements Observer.
func (m *Metrics) FirstToken(d time.Duration) { m.ttft.Observe(d.Seconds()) }

// Finished implements Observer.
func (m *Metrics) Finished(_ string, prompt, completion int, reason infer.StopReason, err error) {
	m.tokens.WithLabelValues("prompt").Add(float64(prompt))
	m.tokens.WithLabelValues("completion").Add(float64(completion))
	label := string(reason)
	if err != nil {
		label = "error"
		if isCancel(err) {
			label = "cancelled"
		}
	}
	m.finished.WithLabelValues(label).Inc()
}

// StoreEvent counts a store event; pass it as StoreOptions.Events.
func (m *Metrics) StoreEvent(ev StoreEvent) {
	if ev.Kind == "pool_fallback" {
		m.fallbacks.Inc()
		return
	}
	m.cache.WithLabelValues(ev.Kind).Inc()
}

func (m *Metrics) request(path string, code int) {
	m.requests.WithLabelValues(path, strconv.Itoa(code)).Inc()
}

var _ Observer = (*Metrics)(nil)
