// Package model holds the frozen base of a LLaMA-family decoder: its
// configuration, its weights (dense float32 or quantized) and the readers and
// writers of the formats it comes in. It does not run the model: the training
// graph is in model/graph and generation in model/infer, and a program that
// only generates text links no autodiff engine.
//
// Where things live:
//
//   - config.go: Config, the shape of the network and the per-family
//     options (rope scaling, partial rotary, q/k/v biases, q/k norms,
//     sliding window); arch.go: the families (llama, mistral, qwen2, qwen3,
//     phi3) Hugging Face configs may name, their defaults, and what refused
//     families lack.
//   - weights.go: Linear, Layer, Weights and the layer table: NewWeights
//     shapes a model, Layer.Linears lists a block's seven linears with their
//     Hugging Face module names (every loader, writer and check walks it),
//     Linear.Check says whether a linear can run.
//   - load.go: Load, DetectFormat and Base (weights + tokenizer), and
//     Weights.Validate, which compares a model against NewWeights.
//   - embedded.go: Default, the embedded stories260K.
//   - load_hf.go, load_hf_bnb.go, bnb_nf4.go: Hugging Face safetensors
//     checkpoints, read and written (WriteHF), with bitsandbytes NF4 weights.
//   - load_llama2c.go, load_gguf.go, load_gguf_arch.go: llama2.c and GGUF
//     checkpoints (GGUF architectures llama, mistral, qwen2, qwen3 and phi3,
//     rope_freqs and longrope factors, the gpt2 tokenizer);
//     load_gguf_chat.go: a GGUF file's chat template and Base.ChatTemplate
//     for every format; write_gguf.go: WriteGGUF, the same architectures
//     and tokenizers written for llama.cpp.
//   - permute.go: the two RoPE row layouts of query and key projections.
//   - quantize.go: Weights.Quantize with a quant.Quantizer, WeightBytes.
//   - tokenizer_files.go: the tokenizer files of a Hugging Face checkpoint
//     (Base.WriteTokenizer); the tokenizers themselves are in model/tokenizer.
package model
