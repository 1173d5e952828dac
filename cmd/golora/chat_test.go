package main

import (
	"encoding/json"
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

// TestTrainChatTemplateFlag: --chat-template picks a named template of a
// tokenizer_config.json whose chat_template is a list of {name, template};
// a name the model does not have fails, naming the file and the names it
// has.
func TestTrainChatTemplateFlag(t *testing.T) {
	dir := writeSmolHF(t, true)
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	raw, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(raw, &cfg))
	def := cfg["chat_template"].(string)
	cfg["chat_template"] = []map[string]string{{"name": "default", "template": def}, {"name": "tool_use", "template": "{{ raise_exception('tool_use chosen') }}"}}
	raw, err = json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfgPath, raw, 0o644))

	data := filepath.Join(t.TempDir(), "chat.jsonl")
	line := `{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}`
	require.NoError(t, os.WriteFile(data, []byte(strings.Repeat(line+"\n", 4)), 0o644))
	args := func(extra ...string) []string {
		return append([]string{"train", "--model", dir, "--data", data, "--out", filepath.Join(t.TempDir(), "out"), "--steps", "1",
			"--batch", "2", "--seq-len", "32", "--eval-split", "0", "--quantize", "none"}, extra...)
	}
	code, stdout, errOut := golora(t, args()...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, stdout, "trained 1 steps")

	code, _, errOut = golora(t, args("--chat-template", "tool_use")...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "tool_use chosen")

	code, _, errOut = golora(t, args("--chat-template", "rag")...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, cfgPath)
	require.Contains(t, errOut, `no template named "rag" (have default, tool_use)`)
}
