package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// golora runs the command line in-process and returns its exit code, stdout
// and stderr.
func golora(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestGenerateEmbeddedGreedy(t *testing.T) {
	code, out, errOut := golora(t, "generate", "--max-tokens", "40")
	require.Equal(t, 0, code, errOut)
	// llama2.c's documented greedy output for stories260K (fixtures README).
	require.True(t, strings.HasPrefix(out, "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."), out)
	require.Contains(t, errOut, "40 tokens")
}

// TestGenerateInt8Head: the int8 head changes the logits by well under the
// gaps greedy decoding chooses between on the embedded model, so the text is
// llama2.c's documented greedy output again.
func TestGenerateInt8Head(t *testing.T) {
	code, out, errOut := golora(t, "generate", "--max-tokens", "40", "--head", "int8")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "output head: an int8 copy")
	require.True(t, strings.HasPrefix(out, "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."), out)
}

// TestGenerateInt8Activations: with an NF4 body and int8 vectors in its
// products, the embedded model gives the greedy text of its NF4 body with
// exact products (computed here by the same command without the flag) up to
// "She loved to play", where the next token is a close call that NF4 itself
// changes: the float32 model (llama2.c's documented text) continues
// "outside in the park", the NF4 body "with her toys", and with int8
// vectors "outside" again. The flag needs NF4 weights.
func TestGenerateInt8Activations(t *testing.T) {
	code, exact, errOut := golora(t, "generate", "--max-tokens", "40", "--quantize", "nf4")
	require.Equal(t, 0, code, errOut)
	code, out, errOut := golora(t, "generate", "--max-tokens", "40", "--quantize", "nf4", "--activations", "int8", "--head", "int8")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "NF4 products: int8 vectors")
	const common = "Once upon a time, there was a little girl named Lily. She loved to play"
	require.True(t, strings.HasPrefix(exact, common), exact)
	require.True(t, strings.HasPrefix(out, common), out)
	code, _, errOut = golora(t, "generate", "--max-tokens", "4", "--activations", "int8")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "ActivationsInt8 needs NF4 linear layers")
}

func TestGenerateRejectsBadFlags(t *testing.T) {
	code, _, errOut := golora(t, "generate", "--quantize", "int3")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `--quantize "int3": want nf4 or none`)
	for _, args := range [][]string{{"--top-p", "2", "--temperature", "1"}, {"--temperature", "-1"}, {"--max-tokens", "-1"}, {"--head", "int4"}, {"--activations", "int4"}} {
		code, out, errOut := golora(t, append([]string{"generate"}, args...)...)
		require.Equal(t, 1, code, "%v", args)
		require.Empty(t, out, "nothing is printed before the flags are checked: %v", args)
		require.NotEmpty(t, errOut)
	}
	code, _, _ = golora(t, "generate", "--no-such-flag")
	require.Equal(t, 2, code)
	code, _, errOut = golora(t, "frobnicate")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `unknown command "frobnicate"`)
	code, out, _ := golora(t, "--help")
	require.Equal(t, 0, code)
	for _, c := range commands() {
		require.Contains(t, out, c.name)
	}
}

func TestInspectEmbeddedJSON(t *testing.T) {
	code, out, errOut := golora(t, "inspect", "embedded", "--json")
	require.Equal(t, 0, code, errOut)
	var inv inventory
	require.NoError(t, json.Unmarshal([]byte(out), &inv))
	// stories260K by its header (fixtures README): dim 64, hidden 172, 5
	// layers, 8 heads, 4 KV heads (kv dim 32), vocab 512, tied head.
	const dim, hidden, layers, kv, vocab = 64, 172, 5, 32, 512
	want := int64(vocab*dim + layers*(2*dim+2*dim*dim+2*kv*dim+3*dim*hidden) + dim)
	require.Equal(t, want, inv.Params)
	require.Equal(t, 4*want, inv.Bytes)
	require.InDelta(t, 32, inv.BitsPerParam, 1e-9)
	require.Len(t, inv.Tensors, 2+layers*9)
	require.EqualValues(t, 64, inv.Config["hidden_size"])
}

func TestInspectGGUFAndText(t *testing.T) {
	code, out, errOut := golora(t, "inspect", filepath.Join("..", "..", "model", "testdata", "stories260K.gguf"))
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "blk.0.attn_q.weight")
	require.Regexp(t, `general\.architecture\s+"llama"`, out)
	require.Contains(t, out, "48 tensors")
	code, _, errOut = golora(t, "inspect", "no/such/model.gguf")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no/such/model.gguf")
}

// TestTrainEvalGenerateAdapter walks the CLI's main path on the embedded
// model: train a QLoRA adapter, refuse to overwrite its checkpoint without
// --resume, resume it, evaluate it, generate with it and inspect it.
func TestTrainEvalGenerateAdapter(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data.jsonl")
	var lines []string
	for i := range 24 {
		lines = append(lines, `{"text": "Tom had a ball and a friend, a dog. They looked in the box. There was the ball! And the moral of the story is: never give up."}`)
		if i%4 == 0 {
			lines = append(lines, `{"prompt": "Sue had a hat.", "completion": " They looked by the tree. There was the hat!"}`)
		}
	}
	require.NoError(t, os.WriteFile(data, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	out := filepath.Join(dir, "adapter")
	train := []string{"train", "--data", data, "--out", out, "--steps", "4", "--batch", "2", "--seq-len", "48",
		"--checkpoint-every", "2", "--eval-every", "2", "--lr", "5e-3", "--rank", "4"}

	code, stdout, errOut := golora(t, train...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, stdout, "trained 4 steps")
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors", "metrics.jsonl", "loss.png"} {
		require.FileExists(t, filepath.Join(out, f))
	}
	require.DirExists(t, filepath.Join(out, "checkpoint"))

	code, _, errOut = golora(t, train...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "pass --resume")
	// A finished run resumed says so and changes nothing (issue 11: it
	// used to print a train loss of 0 and log a second evaluation); a run
	// with other settings refuses the checkpoint (its config hash differs).
	metricsBefore, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	require.NoError(t, err)
	code, stdout, errOut = golora(t, append(train, "--resume")...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "resumed at step 4")
	require.Contains(t, errOut, "already did all its 4 steps; nothing to do")
	require.NotContains(t, stdout, "trained")
	metricsAfter, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	require.NoError(t, err)
	require.Equal(t, string(metricsBefore), string(metricsAfter))
	train[slices.Index(train, "--lr")+1] = "1e-3"
	code, _, errOut = golora(t, append(train, "--resume")...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "written by a run with other settings")

	evalLoss := func(args ...string) float64 {
		code, stdout, errOut := golora(t, append([]string{"eval", "--data", data, "--json", "--seq-len", "48"}, args...)...)
		require.Equal(t, 0, code, errOut)
		var res struct{ Loss, Perplexity float64 }
		require.NoError(t, json.Unmarshal([]byte(stdout), &res))
		require.InDelta(t, math.Exp(res.Loss), res.Perplexity, 1e-9)
		return res.Loss
	}
	base := evalLoss("--quantize", "nf4")
	tuned := evalLoss("--quantize", "nf4", "--adapter", out)
	require.Less(t, tuned, base, "four steps on repeated text must lower its loss")

	code, stdout, errOut = golora(t, "generate", "--quantize", "nf4", "--adapter", out, "--prompt", "Tom had a ball", "--max-tokens", "10")
	require.Equal(t, 0, code, errOut)
	require.True(t, strings.HasPrefix(stdout, "Tom had a ball"))
	require.Contains(t, errOut, "adapter "+out)

	code, stdout, errOut = golora(t, "inspect", out)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, stdout, "adapter (peft)")
	require.Contains(t, stdout, "base_model.model.model.layers.4.mlp.down_proj.lora_B.weight")
}

func TestTrainNeedsDataAndOut(t *testing.T) {
	code, _, errOut := golora(t, "train", "--out", t.TempDir())
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--data and --out are required")
	code, _, errOut = golora(t, "train", "--data", "missing.jsonl", "--out", t.TempDir())
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "missing.jsonl")
}
