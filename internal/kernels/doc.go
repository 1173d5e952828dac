// Package kernels holds the float32 slice kernels of the model's maths, the
// one source both the training graph's operators (model/graph) and the
// generator (model/infer) call, so that they compute the same thing:
//
//   - norm.go: RMSNorm and its backward pass.
//   - rope.go: rotary position embeddings (frequencies, angles, rotation and
//     its inverse).
//   - swiglu.go, swiglu_amd64.go/.s: the sigmoid, SiLU-gated SwiGLU (its
//     last steps in AVX-512 or AVX2, the same bits) and its backward pass.
//   - exp.go, exp_amd64.go/.s, exp_generic.go: the shifted exponential,
//     row maximum and scaling behind softmax, the loss and the sigmoid
//     (AVX-512 and AVX2 Go assembly chosen at run time, pure Go elsewhere).
//   - attention.go, attend*.go/.s: causal grouped-query attention, the
//     batched form with its backward pass and the decode form over a KV
//     cache (AVX-512 and AVX2 score and value kernels, bit-identical to
//     their Go code).
//   - attendfast.go, attendfast_amd64.go/.s: the decode form in another
//     order of additions, 16 (AVX-512) or 8 (AVX2) keys' scores at a time
//     (a serving batch's attention; AttendCached elsewhere).
//   - argmax.go, argmax_amd64.go/.s: the first largest element of a vector
//     (a sampler's greedy choice; AVX-512 and AVX2, the same answer as
//     the loop).
//   - loss.go: the cross-entropy of one row of logits and its gradient.
//   - matmul.go, gemv_amd64.go/.s: dense y = x·wᵀ (internal/gemm's Sgemm for
//     batches, an AVX-512 or AVX2 matrix-vector kernel for one row), dot,
//     axpy and add.
//   - panel.go, panel_amd64.go/.s, panel_avx2_amd64.s: y = x·wᵀ for a batch
//     of rows packed in panels of 32, every weight read once per panel
//     (serving's decode step; AVX-512 and AVX2 tiles, the same bits).
//   - lowrank.go, lowrank_amd64.go/.s: a LoRA term's shrink and expand for
//     one row, float32 or binary16 matrices, and binary16 conversion
//     (AVX-512 and AVX2, the same bits).
//   - int8.go, int8_amd64.go/.s: Int8Matrix, a matrix quantized to int8 in
//     blocks of 32 (llama.cpp's Q8_0 layout, float32 scales) and its
//     single-row product (AVX-512 and AVX2, bit-identical to the Go code),
//     for a decode step's output head.
//   - prefetch.go, prefetch_amd64.go/.s: Prefetch, a hint that brings a
//     slice into the cache ahead of its use (a serving step's KV caches).
//
// The kernels are serial; callers split work across CPUs.
package kernels
