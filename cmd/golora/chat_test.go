package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/model"
)

// writeSmolHF writes a tiny random-weights Hugging Face model with SmolLM's
// tokenizer (49152 tokens) to a new directory; with template, its
// tokenizer_config.json (and so its chat template) too.
func writeSmolHF(t *testing.T, template bool) string {
	t.Helper()
	cfg := model.Config{Dim: 16, HiddenDim: 32, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 8, VocabSize: 49152,
		MaxSeqLen: 256, NormEps: 1e-5, RopeTheta: 10000, TiedOutput: true}
	w := model.RandomWeights(cfg, 7)
	dir := t.TempDir()
	require.NoError(t, model.WriteHF(dir, w, model.F32))
	src := "../../model/tokenizer/testdata/smollm"
	files := []string{"tokenizer.json"}
	if template {
		files = append(files, "tokenizer_config.json")
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(src, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o644))
	}
	return dir
}

// TestTrainChatData: messages lines train with the model's chat template;
// without one, the error says the model has no chat template.
func TestTrainChatData(t *testing.T) {
	data := filepath.Join(t.TempDir(), "chat.jsonl")
	line := `{"messages": [{"role": "user", "content": "What is two plus two?"}, {"role": "assistant", "content": "Four."}]}`
	require.NoError(t, os.WriteFile(data, []byte(strings.Repeat(line+"\n", 8)), 0o644))
	args := func(dir string) []string {
		return []string{"train", "--model", dir, "--data", data, "--out", filepath.Join(t.TempDir(), "out"), "--steps", "2",
			"--batch", "2", "--seq-len", "64", "--eval-split", "0", "--quantize", "none"}
	}
	code, stdout, errOut := golora(t, args(writeSmolHF(t, true))...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, stdout, "trained 2 steps")

	noTmpl := writeSmolHF(t, false)
	code, _, errOut = golora(t, args(noTmpl)...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "model "+noTmpl+" has no chat template")
	require.Contains(t, errOut, "chat.jsonl")
}
