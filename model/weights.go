package model

import (
	"fmt"

	"github.com/golora/golora/quant"
)

// Linear is a frozen weight of shape [Out, In] (PyTorch layout: y = x·Wᵀ). It is
// held either dense in float32 or as a quantized matrix, never both.
type Linear struct {
	Name      string       // Hugging Face module name, e.g. "model.layers.0.self_attn.q_proj"
	Out, In   int          // shape
	Dense     []float32    // row-major [Out, In]; nil when Quantized is set
	Quantized quant.Matrix // nil when Dense is set
	// Bias, when not nil, is added to every output row ([Out]); it is
	// frozen like the weight (Qwen2's q, k and v projections).
	Bias []float32

	// finite records that a loader checked every value as it read them
	// (before quantizing, or through a ggml matrix's scales), so that
	// Weights.CheckFinite need not dequantize the matrix again.
	finite bool
}

// Check reports a Linear that cannot be run: nil, a shape that is not
// positive, no or both representations, or a backing store whose size
// disagrees with [Out, In].
func (lin *Linear) Check() error {
	switch {
	case lin == nil:
		return fmt.Errorf("model: linear layer is nil")
	case lin.Out <= 0 || lin.In <= 0:
		return fmt.Errorf("model: %s: shape [%d %d] is not positive", lin.Name, lin.Out, lin.In)
	case lin.Dense != nil && lin.Quantized != nil:
		return fmt.Errorf("model: %s: holds both dense and quantized data", lin.Name)
	case lin.Quantized != nil:
		if r, c := lin.Quantized.Dims(); r != lin.Out || c != lin.In {
			return fmt.Errorf("model: %s: quantized matrix is [%d %d], want [%d %d]", lin.Name, r, c, lin.Out, lin.In)
		}
	case len(lin.Dense) != lin.Out*lin.In:
		return fmt.Errorf("model: %s: %d dense values, want %d×%d", lin.Name, len(lin.Dense), lin.Out, lin.In)
	}
	if lin.Bias != nil && len(lin.Bias) != lin.Out {
		return fmt.Errorf("model: %s: bias has %d values, want %d", lin.Name, len(lin.Bias), lin.Out)
	}
	return nil
}

// Layer holds the frozen weights of one transformer block.
type Layer struct {
	AttnNorm       []float32 // input_layernorm [Dim]
	Q, K, V, O     *Linear   // self_attn.{q,k,v,o}_proj
	QNorm, KNorm   []float32 // self_attn.{q,k}_norm [HeadDim], with Config.QKNorm; else nil
	MLPNorm        []float32 // post_attention_layernorm [Dim]
	Gate, Up, Down *Linear   // mlp.{gate,up,down}_proj (llama2.c w1, w3, w2)
}

// NamedLinear is one linear of a block: its module name within the block
// (as PEFT's target_modules and Hugging Face's tensor keys spell it, e.g.
// "self_attn.q_proj") and where it lives in a Layer.
type NamedLinear struct {
	Module string
	Linear **Linear
}

// modules lists the module names of a block's seven linears in the order
// Layer.Linears returns them.
var modules = [...]string{
	"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
	"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
}

// Linears is the layer table: the seven linears of the block in the order the
// forward pass applies them (q, k, v, o, gate, up, down), each with its module
// name. Linear points into l, so a caller may set it.
func (l *Layer) Linears() [len(modules)]NamedLinear {
	return [...]NamedLinear{
		{modules[0], &l.Q}, {modules[1], &l.K}, {modules[2], &l.V}, {modules[3], &l.O},
		{modules[4], &l.Gate}, {modules[5], &l.Up}, {modules[6], &l.Down},
	}
}

// linearShapes returns the [Out, In] shapes of a block's linears for cfg, in
// the order of modules.
func linearShapes(cfg Config) [len(modules)][2]int {
	q, kv := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	return [...][2]int{
		{q, cfg.Dim}, {kv, cfg.Dim}, {kv, cfg.Dim}, {cfg.Dim, q},
		{cfg.HiddenDim, cfg.Dim}, {cfg.HiddenDim, cfg.Dim}, {cfg.Dim, cfg.HiddenDim},
	}
}

// Weights is a whole frozen model. Q and K rows are always in the Hugging Face
// RoPE layout (rotate halves); loaders of interleaved-pair checkpoints (llama2.c,
// GGUF) permute them on load, so adapters trained here use Hugging Face's
// row order and load in PEFT unchanged.
type Weights struct {
	Config Config
	// Embedding is embed_tokens [VocabSize, Dim] in float32, or nil when
	// EmbeddingMatrix holds it.
	Embedding []float32
	// EmbeddingMatrix, when not nil, holds embed_tokens instead of
	// Embedding: a frozen base's BF16 or F16 embedding (*quant.Half) or a
	// GGUF's block-quantized one (*ggml.Matrix), kept as the checkpoint
	// stores it (see LoadOptions.Float32Embedding). Read
	// rows with EmbedToken; EmbeddingFloat32 widens the whole table.
	EmbeddingMatrix quant.Matrix
	Layers          []Layer
	Norm            []float32 // final norm [Dim]
	// Output is lm_head [VocabSize, Dim]. With Config.TiedOutput it is the
	// embedding: its Dense aliases Embedding, or its Quantized is
	// EmbeddingMatrix.
	Output *Linear
	// RopeFreqFactors, when not nil, divides each rotary frequency
	// ([Config.Rotary()/2]): llama.cpp's rope_freqs tensor, the form Llama 3's
	// rope scaling takes in GGUF files.
	RopeFreqFactors []float32
	// RopeLongFactors are longrope's (Phi-3's) long factors
	// ([Config.Rotary()/2]), which replace RopeFreqFactors (its short
	// ones) beyond Config.RopeScaling.OriginalMaxPos. golora refuses those
	// positions; it keeps the factors to write the model back (GGUF
	// rope_factors_long). Nil for other rope types.
	RopeLongFactors []float32

	// embeddingFinite records that the loader checked every value of
	// EmbeddingMatrix as it read them (see Linear.finite).
	embeddingFinite bool
}

// EmbedToken writes the embedding of token tok (row tok of embed_tokens)
// into dst[:Config.Dim], from Embedding or EmbeddingMatrix. It returns an
// error for a token outside the vocabulary, a short dst or no embedding.
func (w *Weights) EmbedToken(dst []float32, tok int) error {
	d := w.Config.Dim
	switch {
	case tok < 0 || tok >= w.Config.VocabSize:
		return fmt.Errorf("model: token %d is outside the vocabulary [0, %d)", tok, w.Config.VocabSize)
	case len(dst) < d:
		return fmt.Errorf("model: embedding row of %d values into %d", d, len(dst))
	case w.EmbeddingMatrix != nil:
		if err := w.EmbeddingMatrix.DequantizeRows(dst[:d], tok, tok+1); err != nil {
			return fmt.Errorf("model: model.embed_tokens: %w", err)
		}
		return nil
	case len(w.Embedding) < (tok+1)*d:
		return fmt.Errorf("model: model.embed_tokens: %d values, too few for token %d", len(w.Embedding), tok)
	}
	copy(dst[:d], w.Embedding[tok*d:(tok+1)*d])
	return nil
}

// EmbeddingFloat32 returns embed_tokens in float32: Embedding itself, or
// EmbeddingMatrix widened into a new slice (4 bytes per value), for code
// that needs the whole table dense (writers, merging).
func (w *Weights) EmbeddingFloat32() ([]float32, error) {
	if w.EmbeddingMatrix == nil {
		return w.Embedding, nil
	}
	rows, cols := w.EmbeddingMatrix.Dims()
	out := make([]float32, rows*cols)
	if err := w.EmbeddingMatrix.DequantizeRows(out, 0, rows); err != nil {
		return nil, fmt.Errorf("model: model.embed_tokens: %w", err)
	}
	return out, nil
}

// RopeInvFreq returns the rotary frequencies the forward pass uses:
// Config.RopeInvFreq, divided by RopeFreqFactors when set.
func (w *Weights) RopeInvFreq() []float64 {
	f := w.Config.RopeInvFreq()
	if len(w.RopeFreqFactors) == len(f) {
		for i, d := range w.RopeFreqFactors {
			f[i] /= float64(d)
		}
	}
	return f
}

// NewWeights returns Weights shaped for cfg with no values: every block
// Linear and the output head named with its Hugging Face module name and
// shaped [Out, In]. Callers fill Embedding, the norms and each Linear's Dense
// (or Quantized); with cfg.TiedOutput, Output.Dense is meant to alias
// Embedding. Loaders use it, and so can code that builds a model itself.
func NewWeights(cfg Config) *Weights {
	w := &Weights{Config: cfg, Layers: make([]Layer, cfg.Layers)}
	shapes := linearShapes(cfg)
	for l := range w.Layers {
		for i, nl := range w.Layers[l].Linears() {
			*nl.Linear = &Linear{Name: fmt.Sprintf("model.layers.%d.%s", l, nl.Module), Out: shapes[i][0], In: shapes[i][1]}
		}
	}
	w.Output = &Linear{Name: "lm_head", Out: cfg.VocabSize, In: cfg.Dim}
	return w
}

// Linears returns every linear layer of the transformer blocks in a fixed
// order: block by block, and within a block as Layer.Linears lists them. The
// output head (w.Output) is not included: QLoRA quantizes the block linears
// and keeps the head in float (float32, or the checkpoint's BF16 or F16),
// and a tied head is the embedding itself.
func (w *Weights) Linears() []*Linear {
	out := make([]*Linear, 0, len(modules)*len(w.Layers))
	for l := range w.Layers {
		for _, nl := range w.Layers[l].Linears() {
			out = append(out, *nl.Linear)
		}
	}
	return out
}

// Extensions names what a forward pass needs beyond Llama 2's to run w:
// rope scaling, rope frequency factors, partial rotary embeddings, q/k/v
// biases, q/k norms and a sliding-window position limit. A forward pass that
// implements none of them (Llama 2 only) must refuse weights for which it is
// not empty, rather than compute wrong logits.
func (w *Weights) Extensions() []string {
	c := w.Config
	var ext []string
	if t := c.RopeScaling.Type; t != "" && t != "default" {
		ext = append(ext, "rope scaling "+t)
	}
	if w.RopeFreqFactors != nil {
		ext = append(ext, "rope frequency factors")
	}
	if c.RotaryDim > 0 && c.RotaryDim < c.HeadDim {
		ext = append(ext, "partial rotary embeddings")
	}
	if c.QKVBias {
		ext = append(ext, "q/k/v biases")
	}
	if c.QKNorm {
		ext = append(ext, "q/k norms")
	}
	if c.SlidingWindow > 0 {
		ext = append(ext, fmt.Sprintf("sliding window %d", c.SlidingWindow))
	}
	return ext
}
