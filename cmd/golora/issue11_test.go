//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
)

// savedAdapter saves a rank-2 adapter on the embedded model into a new
// directory.
func savedAdapter(t *testing.T) string {
	ck, err := model.Default()
	require.NoError(t, err)
	cfg := lora.DefaultConfig()
	cfg.R = 2
	a, err := lora.New(ck.Weights, cfg, 1)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "adapter")
	require.NoError(t, lora.Save(dir, a))
	return dir
}

// TestInspectValidatesAdapter gives inspect adapter configs that every
// other command refuses: it must refuse them too.
func TestInspectValidatesAdapter(t *testing.T) {
	dir := savedAdapter(t)
	code, _, errOut := golora(t, "inspect", dir)
	require.Equal(t, 0, code, errOut)
	path := filepath.Join(dir, lora.ConfigFile)
	good, err := os.ReadFile(path)
	require.NoError(t, err)
	for what, cfg := range map[string]string{
		"r 0":          strings.Replace(string(good), `"r": 2`, `"r": 0`, 1),
		"peft_type":    strings.Replace(string(good), `"peft_type": "LORA"`, `"peft_type": "PREFIX_TUNING"`, 1),
		"use_dora":     strings.Replace(string(good), `"use_dora": false`, `"use_dora": true`, 1),
		"a null value": "null",
	} {
		require.NotEqual(t, string(good), cfg, what)
		require.NoError(t, os.Remove(path))
		require.NoError(t, os.WriteFile(path, []byte(cfg), 0o644))
		code, _, errOut := golora(t, "inspect", dir)
		require.Equal(t, 1, code, "%s: inspect accepted it", what)
		require.Contains(t, errOut, "adapter_config.json", what)
	}
}

// TestFlagsRefused checks that absurd flags are refused with the flag's
// name, before any work.
func TestFlagsRefused(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	for flagArgs, want := range map[string]string{
		"--grad-accum 0":    "--grad-accum 0",
		"--eval-split -0.1": "--eval-split -0.1",
		"--batch 0":         "--batch 0",
		"--seq-len 0":       "--seq-len 0",
		"--rank 100000":     "rank 100000 is larger than module",
	} {
		args := append([]string{"train", "--data", quickstartData, "--out", out, "--steps", "1"}, strings.Fields(flagArgs)...)
		code, _, errOut := golora(t, args...)
		require.Equal(t, 1, code, flagArgs)
		require.Contains(t, errOut, want, flagArgs)
		require.NotContains(t, errOut, "BatchSize", flagArgs)
	}
	code, _, errOut := golora(t, "eval", "--data", quickstartData, "--batch", "0")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "--batch 0")

	code, _, errOut = golora(t, "generate", "-h")
	require.Equal(t, 0, code)
	require.Contains(t, errOut, "0 means no limit")
}

// TestEvalWithoutTokenizer evaluates pre-tokenized data on a model
// directory that has no tokenizer: no tokenizer is needed. Text data, and
// generate, ask for --tokenizer.
func TestEvalWithoutTokenizer(t *testing.T) {
	ck, err := model.Default()
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, model.WriteHF(dir, ck.Weights, model.F32))
	ids := filepath.Join(t.TempDir(), "ids.jsonl")
	require.NoError(t, os.WriteFile(ids, []byte(`{"input_ids": [1, 403, 407, 261, 378, 425, 2]}`+"\n"), 0o644))
	code, stdout, errOut := golora(t, "eval", "--model", dir, "--data", ids)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, stdout, "1 examples")

	code, _, errOut = golora(t, "eval", "--model", dir, "--data", quickstartData)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "needs a tokenizer")
	code, _, errOut = golora(t, "generate", "--model", dir)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "pass --tokenizer")
}

// TestMergeFullDiskLeavesNothing merges with a file size limit far below
// the model's size, as on a full disk: golora must fail and leave no output
// directory and no temporary one.
func TestMergeFullDiskLeavesNothing(t *testing.T) {
	adapter := savedAdapter(t)
	parent := t.TempDir()
	out := filepath.Join(parent, "merged")
	for _, cmd := range [][]string{
		{"merge", "--adapter", adapter, "--out", out},
		{"quantize", "--out", out, "--compare=false"},
	} {
		c := startChildEnv(t, []string{fmt.Sprintf("GOLORA_TEST_FSIZE=%d", 64<<10)}, cmd...)
		require.Equal(t, 1, c.wait(), c.stderr.String())
		require.Contains(t, c.stderr.String(), "file too large", cmd[0])
		entries, err := os.ReadDir(parent)
		require.NoError(t, err)
		require.Empty(t, entries, "%s on a full disk left files", cmd[0])
	}
	code, _, errOut := golora(t, "merge", "--adapter", adapter, "--out", out)
	require.Equal(t, 0, code, errOut)
	require.FileExists(t, filepath.Join(out, "model.safetensors"))
	code, _, errOut = golora(t, "merge", "--adapter", adapter, "--out", out)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "not empty")
}
