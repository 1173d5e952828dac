// Package graph is the training and evaluation forward pass of a frozen
// model.Weights as a gorgonia expression graph, the autodiff engine of
// training: New builds it for fixed batches, Graph runs it forward or
// forward and backward, and an Adapter (loragraph.Adapter) adds trainable
// terms to its frozen linear layers.
//
// Where things live:
//
//   - graph.go: Graph, Options, Adapter, New and the runs.
//   - frozen_linear.go: the operator x·Wᵀ of a frozen dense or quantized
//     weight, with its gradient to x only.
//   - graph_ops.go: the shared operator plumbing and the RMSNorm and SwiGLU
//     operators; graph_attention.go: causal grouped-query attention; rope.go:
//     rotary embeddings; loss.go: the cross-entropy loss and IgnoreTarget;
//     head_loss.go: the output head and the loss fused, a chunk of rows at a
//     time, for training.
//   - machine.go: what runs a graph in place of gorgonia's TapeMachine,
//     dropping each value after its last reader and reusing its buffer.
//   - buffers.go: Buffers and BufferedAdapter, through which an adapter's
//     operators draw from the same arena, so the machine reclaims their
//     outputs too.
//
// Every operator's maths is a call into internal/kernels, the one copy the
// generator of model/infer calls too; this package adds only the gorgonia
// plumbing and the split of work across CPUs.
package graph
