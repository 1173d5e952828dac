// Package kernels holds the float32 slice kernels of the model's maths, the
// one source both the training graph's operators (model/graph) and the
// generator (model/infer) call, so that they compute the same thing:
//
//   - norm.go: RMSNorm and its backward pass.
//   - rope.go: rotary position embeddings (frequencies, angles, rotation and
//     its inverse).
//   - swiglu.go: the sigmoid, SiLU-gated SwiGLU and its backward pass.
//   - exp.go, exp_avx512.go, exp_generic.go: the shifted exponential behind
//     softmax, the loss and the sigmoid (AVX-512 with GOEXPERIMENT=simd).
//   - attention.go: causal grouped-query attention, the batched form with
//     its backward pass and the decode form over a KV cache.
//   - loss.go: the cross-entropy of one row of logits and its gradient.
//   - matmul.go: dense y = x·wᵀ, dot, axpy and add.
//
// The kernels are serial; callers split work across CPUs.
package kernels
