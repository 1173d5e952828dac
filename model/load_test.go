package model

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefault(t *testing.T) {
	ck, err := Default()
	require.NoError(t, err)
	assert.Equal(t, "embedded", ck.Format)
	assert.Equal(t, DefaultPath, ck.Path)

	// The embedded bytes are the published files: sha256 from the fixtures
	// README.
	sum := sha256.Sum256(stories260KBin)
	assert.Equal(t, "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696", hex.EncodeToString(sum[:]))
	sum = sha256.Sum256(tok512Bin)
	assert.Equal(t, "037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312", hex.EncodeToString(sum[:]))

	bin, err := loadLlama2C(stories260KBinPath)
	require.NoError(t, err)
	assertSameWeights(t, bin, ck.Weights, true)
	g, _, err := loadGGUF(stories260KGGUFPath)
	require.NoError(t, err)
	assertSameWeights(t, g, ck.Weights, false)

	// Golden ids from the fixtures README.
	assert.Equal(t, []int{403, 407, 261, 378}, ck.Tokenizer.Encode("Once upon a time"))
	assert.Equal(t, 1, ck.Tokenizer.BOS())

	// Each call returns an independent copy.
	again, err := Default()
	require.NoError(t, err)
	again.Weights.Layers[0].Q.Dense[0]++
	assert.NotEqual(t, again.Weights.Layers[0].Q.Dense[0], ck.Weights.Layers[0].Q.Dense[0])
}

func TestLoad(t *testing.T) {
	ck, err := Load(context.Background(), stories260KBinPath, LoadOptions{TokenizerPath: "stories260k/tok512.bin"})
	require.NoError(t, err)
	assert.Equal(t, "llama2c", ck.Format)
	assert.Equal(t, stories260KBinPath, ck.Path)
	def, err := Default()
	require.NoError(t, err)
	assertSameWeights(t, def.Weights, ck.Weights, true)
	assert.Equal(t, []int{403, 407, 261, 378}, ck.Tokenizer.Encode("Once upon a time"))

	ck, err = Load(context.Background(), stories260KGGUFPath, LoadOptions{})
	require.NoError(t, err)
	assert.Equal(t, "gguf", ck.Format)
	assertSameWeights(t, def.Weights, ck.Weights, false)
	assert.Equal(t, []int{403, 407, 261, 378}, ck.Tokenizer.Encode("Once upon a time"))

	dir := t.TempDir()
	other := filepath.Join(dir, "model.safetensors")
	require.NoError(t, os.WriteFile(other, []byte("x"), 0o644))

	for _, c := range []struct {
		path string
		opts LoadOptions
		want string
	}{
		{stories260KBinPath, LoadOptions{}, "set LoadOptions.TokenizerPath"},
		{stories260KBinPath, LoadOptions{TokenizerPath: filepath.Join(dir, "nope.bin")}, "nope.bin"},
		{stories260KGGUFPath, LoadOptions{TokenizerPath: "stories260k/tok512.bin"}, "carries its own tokenizer"},
		{other, LoadOptions{}, `unknown checkpoint format ".safetensors"`},
		{filepath.Join(dir, "missing.gguf"), LoadOptions{}, "missing.gguf"},
		{dir, LoadOptions{}, dir}, // a directory without config.json fails in loadHF
	} {
		ck, err := Load(context.Background(), c.path, c.opts)
		assert.True(t, ck == nil, c.path)
		if assert.Error(t, err, c.path) {
			assert.Contains(t, err.Error(), c.want, c.path)
		}
	}
}

func TestValidate(t *testing.T) {
	fresh := func() *Weights {
		ck, err := Default()
		require.NoError(t, err)
		return ck.Weights
	}
	require.NoError(t, fresh().Validate())
	cases := []struct {
		name string
		edit func(w *Weights)
		want string
	}{
		{"q shape", func(w *Weights) { w.Layers[3].Q.In = 63 }, "model.layers.3.self_attn.q_proj: shape [64 63], want [64 64]"},
		{"dense length", func(w *Weights) { w.Layers[1].Down.Dense = w.Layers[1].Down.Dense[1:] }, "model.layers.1.mlp.down_proj: 11007 dense values, want 64×172"},
		{"missing", func(w *Weights) { w.Layers[2].Up = nil }, "model.layers.2.mlp.up_proj is missing"},
		{"name", func(w *Weights) { w.Layers[0].K.Name = "k" }, `model.layers.0.self_attn.k_proj: linear is named "k"`},
		{"norm", func(w *Weights) { w.Layers[4].MLPNorm = nil }, "model.layers.4.post_attention_layernorm: 0 values, want shape [64]"},
		{"embedding", func(w *Weights) { w.Config.VocabSize = 500 }, "model.embed_tokens: 32768 values, want shape [500 64]"},
		{"layers", func(w *Weights) { w.Layers = w.Layers[:4] }, "config has 5 layers, weights 4"},
		{"tied", func(w *Weights) { w.Output.Dense = append([]float32(nil), w.Embedding...) }, "config says tied true"},
		{"both", func(w *Weights) { w.Layers[0].V.Quantized = fakeMatrix{32, 64} }, "holds both dense and quantized"},
		{"quantized dims", func(w *Weights) { w.Layers[0].V.Dense, w.Layers[0].V.Quantized = nil, fakeMatrix{64, 32} }, "quantized matrix is [64 32], want [32 64]"},
		{"kv heads", func(w *Weights) { w.Config.KVHeads = 3 }, "8 heads and 3 KV heads"},
		{"head dim", func(w *Weights) { w.Config.HeadDim = 7 }, "head dim 7"},
		{"theta", func(w *Weights) { w.Config.RopeTheta = 0 }, "rope theta 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := fresh()
			c.edit(w)
			assert.ErrorContains(t, w.Validate(), c.want)
		})
	}
}
