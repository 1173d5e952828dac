package model

// Config describes a LLaMA-family decoder-only transformer.
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
}
