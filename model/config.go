package model

import "github.com/golora/golora/internal/kernels"

// Config describes a LLaMA-family decoder-only transformer: Llama 2 and 3,
// Mistral, Qwen2, Qwen3 and Phi-3 differ only in the optional fields below.
type Config struct {
	Dim        int     // hidden_size
	HiddenDim  int     // intermediate_size of the SwiGLU MLP
	Layers     int     // num_hidden_layers
	Heads      int     // num_attention_heads
	KVHeads    int     // num_key_value_heads (grouped-query attention when < Heads)
	HeadDim    int     // head_dim; Dim/Heads when the checkpoint does not give it
	VocabSize  int     // vocab_size
	MaxSeqLen  int     // max_position_embeddings
	NormEps    float64 // rms_norm_eps
	RopeTheta  float64 // rope_theta
	TiedOutput bool    // tie_word_embeddings: the output head shares the embedding

	// Arch is the Hugging Face model_type the weights follow: "" (llama),
	// "mistral", "qwen2", "qwen3" or "phi3". It decides the
	// architecture and tensor names WriteHF writes; the forward pass reads
	// only the fields below.
	Arch string `json:",omitzero"`

	// The fields below are omitted from JSON when zero, so a Llama 2
	// configuration encodes as it did before they existed (training
	// checkpoints hash it).

	// RopeScaling rescales the rotary frequencies (Llama 3.1's "llama3",
	// "linear"); the zero value leaves them as they are.
	RopeScaling RopeScaling `json:",omitzero"`
	// RotaryDim is how many leading values of each head RoPE rotates
	// (partial_rotary_factor·head_dim, Phi-3); 0 means all HeadDim.
	RotaryDim int `json:",omitzero"`
	// QKNorm says that each layer RMS-normalizes every query and key head
	// after the projection and before RoPE (Qwen3's q_norm and k_norm).
	QKNorm bool `json:",omitzero"`
	// QKVBias says that q_proj, k_proj and v_proj carry a bias (Qwen2).
	QKVBias bool `json:",omitzero"`
	// SlidingWindow, when positive, limits attention to the last
	// SlidingWindow positions (Mistral), in training and generation.
	SlidingWindow int `json:",omitzero"`
}

// RopeScaling is a rescaling of the rotary frequencies (rope_scaling in a
// Hugging Face config). See kernels.RopeScaling for the fields.
type RopeScaling = kernels.RopeScaling

// Rotary returns the number of leading values of each head that RoPE
// rotates: RotaryDim, or HeadDim when that is 0.
func (c Config) Rotary() int {
	if c.RotaryDim > 0 {
		return c.RotaryDim
	}
	return c.HeadDim
}

// RopeInvFreq returns the rotary frequency of each of the Rotary()/2 pairs of
// a head, rescaled by RopeScaling. Training and generation both take their
// angles from it.
func (c Config) RopeInvFreq() []float64 {
	return kernels.ScaledRopeInvFreq(c.Rotary(), c.RopeTheta, c.RopeScaling)
}
