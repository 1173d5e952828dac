// Package serve serves one base model and many LoRA adapters at once: the
// engine of `golora serve`.
//
//   - Store (store.go) caches adapters from a Source (Dir: a directory of
//     PEFT adapters by name) in memory bounded in bytes, least recently used
//     first, with pinning; an unknown name is loaded on its first request,
//     once however many ask; Load, Unload and Pin work while requests run,
//     each running request keeping the version it started with. Adapters are
//     held in float32 or, to halve their bytes, float16 (Precision; golora
//     serve's default).
//   - Memory: cached adapters, the KV caches and, with MoveOffHeap, the
//     base's large arrays live outside the Go heap (internal/hugemem arenas),
//     so that the garbage collector's headroom (GOGC's 100% of the live
//     heap) scales with the server's own small live data, not with the base
//     and the cache. Cached adapters share the huge pages of the Store's
//     pool (hugemem.Pool), so that a step whose rows use many adapters
//     takes few TLB misses. An adapter's memory returns to the pool when it
//     has left the cache and its last Handle is released (and the huge
//     pages no adapter holds any more, to the system); a Dir adapter is
//     decoded from its file straight into that memory (lora.Reader), a
//     chunk at a time.
//   - Engine (engine.go) schedules requests with continuous batching: they
//     join and leave the running batch between steps, prompts run in chunks
//     beside the others' decoding, a KV-cache budget in positions makes
//     requests wait instead of running out of memory, a cancelled request
//     leaves at the next step, and each request samples with its own seeded
//     random source.
//   - Model (model.go) is the step the engine runs: BatchedModel runs all the
//     rows as one infer.Batch step (each frozen product once for the batch,
//     each adapter's term on its group of rows), for every architecture
//     the Generator runs; PerRowModel runs each row on
//     an infer.Generator, the reference.
//   - Server (http.go) is the OpenAI-compatible HTTP API over an Engine, with
//     streaming, n choices per request (each seeded with ChoiceSeed),
//     logprobs and echo (logprobs.go), limits, bearer-token auth and
//     Prometheus Metrics (metrics.go).
//   - Logprobs (Request.Logprobs, PromptLogprobs) are the log-softmax of the
//     logits the sampler is given, before temperature and top-p: the
//     model's distribution whatever the sampling (vLLM's default). A request
//     pays for them only when it asks: the generated tokens' cost a pass over
//     the vocabulary per token, spread with the step's draws, the prompt's the
//     output head at every prompt position (infer.BatchRow.AllLogits) and a
//     pass per position.
package serve
