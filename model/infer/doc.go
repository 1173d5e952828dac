// Package infer runs a frozen model.Weights to generate text, in plain Go
// with no autodiff engine: a Generator keeps a KV cache so that each new
// token costs one pass over the weights, a Sampler picks tokens, and Generate
// does the whole of prompt → text. An Adapter (lora.Adapter, lora.Set) adds
// its correction to every linear layer.
//
// Where things live:
//
//   - generate.go: Generator, its options and KV cache, Generate,
//     GenerateOptions, Completion, StopReason, ErrContextFull, Adapter.
//   - sample.go: Sampler (greedy, temperature, top-p).
//
// The model maths (RMSNorm, RoPE, SwiGLU, attention, products) is a call into
// internal/kernels, the one copy the training graph of model/graph calls too.
package infer
