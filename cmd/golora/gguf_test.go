package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golora/golora/model"
	"github.com/golora/golora/model/chat"
	"github.com/stretchr/testify/require"
)

// llama.cpp's Q8_0 conversion of stories260K (quant/ggml/testdata/README.md).
const storiesQ8_0 = "../../quant/ggml/testdata/stories260K.q8_0.llama.gguf"

// TestTrainOnGGUFQ8_0: QLoRA trains directly on a GGUF's Q8_0 linears (the
// default --quantize keeps them), the adapter generates, and an explicit
// --quantize nf4 re-quantizes them instead.
func TestTrainOnGGUFQ8_0(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data.jsonl")
	line := `{"text": "Tom had a ball and a friend, a dog. They looked in the box. There was the ball!"}`
	require.NoError(t, os.WriteFile(data, []byte(strings.Repeat(line+"\n", 8)), 0o644))
	out := filepath.Join(dir, "adapter")
	code, stdout, errOut := golora(t, "train", "--model", storiesQ8_0, "--data", data, "--out", out, "--steps", "3",
		"--batch", "2", "--seq-len", "32", "--eval-split", "0", "--lr", "5e-3", "--rank", "4")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "linear layers Q8_0")
	require.Contains(t, stdout, "trained 3 steps")

	code, _, errOut = golora(t, "generate", "--model", storiesQ8_0, "--adapter", out, "--max-tokens", "8")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "8 tokens")

	code, _, errOut = golora(t, "generate", "--model", storiesQ8_0, "--quantize", "nf4", "--max-tokens", "2")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "linear layers NF4")
}

// TestQuantizeToGGUF: golora quantize --format gguf writes a GGUF that
// golora loads back with the requested block type (that its tensors are
// llama.cpp's own bytes is model's TestWriteGGUFMatchesLlamaQuantize), and
// a bad --type leaves no file.
func TestQuantizeToGGUF(t *testing.T) {
	dir := t.TempDir()
	// stories260K's rows are 64 wide, too narrow for Q4_K's 256-element
	// blocks: llama-quantize (and so golora) falls back to Q5_0.
	for typ, stored := range map[string]string{"q8_0": "Q8_0", "q4_k": "Q5_0", "f16": "float32", "f32": "float32"} {
		out := filepath.Join(dir, typ+".gguf")
		code, stdout, errOut := golora(t, "quantize", "--format", "gguf", "--type", typ, "--out", out)
		require.Equal(t, 0, code, errOut)
		require.Contains(t, stdout, "wrote "+out)
		code, _, errOut = golora(t, "generate", "--model", out, "--max-tokens", "4")
		require.Equal(t, 0, code, errOut)
		require.Contains(t, errOut, "linear layers "+stored)
	}
	bad := filepath.Join(dir, "bad.gguf")
	code, _, errOut := golora(t, "quantize", "--format", "gguf", "--type", "q5_1", "--out", bad)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `--type "q5_1": want q8_0, q4_k, f16 or f32`)
	require.NoFileExists(t, bad)
}

// TestTrainChatDataOnGGUF: a byte-level BPE model with a chat template,
// written as GGUF by golora quantize, trains on messages lines with the
// template the GGUF file carries (tokenizer.chat_template), as the Hugging
// Face directory it came from does.
func TestTrainChatDataOnGGUF(t *testing.T) {
	hf := writeSmolHF(t, true)
	ggufPath := filepath.Join(t.TempDir(), "smol.gguf")
	code, _, errOut := golora(t, "quantize", "--model", hf, "--format", "gguf", "--type", "f32", "--out", ggufPath)
	require.Equal(t, 0, code, errOut)
	data := filepath.Join(t.TempDir(), "chat.jsonl")
	line := `{"messages": [{"role": "user", "content": "What is two plus two?"}, {"role": "assistant", "content": "Four."}]}`
	require.NoError(t, os.WriteFile(data, []byte(strings.Repeat(line+"\n", 8)), 0o644))
	code, stdout, errOut := golora(t, "train", "--model", ggufPath, "--data", data, "--out", filepath.Join(t.TempDir(), "out"), "--steps", "2",
		"--batch", "2", "--seq-len", "64", "--eval-split", "0", "--quantize", "none")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, stdout, "trained 2 steps")
}

// TestServeChatTemplateFromGGUF: serve's /v1/chat/completions gets the chat
// template a GGUF file carries, and is off for a GGUF without one.
func TestServeChatTemplateFromGGUF(t *testing.T) {
	ggufPath := filepath.Join(t.TempDir(), "smol.gguf")
	code, _, errOut := golora(t, "quantize", "--model", writeSmolHF(t, true), "--format", "gguf", "--type", "q8_0", "--out", ggufPath)
	require.Equal(t, 0, code, errOut)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for path, want := range map[string]bool{ggufPath: true, storiesQ8_0: false} {
		ck, err := model.Load(context.Background(), path, model.LoadOptions{})
		require.NoError(t, err)
		tmpl, err := chatTemplate(ck, "default", log)
		require.NoError(t, err)
		require.Equal(t, want, tmpl != nil, path)
		if want {
			text, err := tmpl.Render([]chat.Message{{Role: "user", Content: "Hi"}}, chat.RenderOptions{AddGenerationPrompt: true})
			require.NoError(t, err)
			require.Equal(t, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", text)
		}
	}
}
