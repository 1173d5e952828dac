package model

import "github.com/golora/golora/quant"

// Linear is a frozen weight of shape [Out, In] (PyTorch layout: y = x·Wᵀ). It is
// held either dense in float32 or as a quantized matrix, never both.
type Linear struct {
	Name      string       // Hugging Face module name, e.g. "model.layers.0.self_attn.q_proj"
	Out, In   int          // shape
	Dense     []float32    // row-major [Out, In]; nil when Quantized is set
	Quantized quant.Matrix // nil when Dense is set
}

// Layer holds the frozen weights of one transformer block.
type Layer struct {
	AttnNorm       []float32 // input_layernorm [Dim]
	Q, K, V, O     *Linear   // self_attn.{q,k,v,o}_proj
	MLPNorm        []float32 // post_attention_layernorm [Dim]
	Gate, Up, Down *Linear   // mlp.{gate,up,down}_proj (llama2.c w1, w3, w2)
}

// Weights is a whole frozen model. Q and K rows are always in the Hugging Face
// RoPE layout (rotate halves); loaders of interleaved-pair checkpoints (llama2.c,
// GGUF) permute them on load, so adapters trained here use Hugging Face's
// row order and load in PEFT unchanged.
type Weights struct {
	Config    Config
	Embedding []float32 // embed_tokens [VocabSize, Dim]
	Layers    []Layer
	Norm      []float32 // final norm [Dim]
	Output    *Linear   // lm_head [VocabSize, Dim]; when Config.TiedOutput its Dense aliases Embedding
}
