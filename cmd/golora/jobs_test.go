package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSubmitWorkerJobsEmbedded runs the distributed flow on one machine:
// a worker starts the embedded JetStream server, submit and jobs join it.
func TestSubmitWorkerJobsEmbedded(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("NATS_URL", "")
	nats := filepath.Join(dir, "nats")
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "quickstart", "data", "train.jsonl"))
	require.NoError(t, err)
	lines := strings.SplitAfter(string(data), "\n")
	good := filepath.Join(dir, "good.jsonl")
	require.NoError(t, os.WriteFile(good, []byte(strings.Join(lines[:30], "")), 0o644))

	// Queued before any worker runs: the job waits on disk.
	code, id, errOut := golora(t, "submit", "--nats-embedded", nats, "--adapter", "acme", "--data", good,
		"--steps", "3", "--batch", "2", "--seq-len", "32", "--checkpoint-every", "2")
	require.Equal(t, 0, code, errOut)
	id = strings.TrimSpace(id)
	code, out, errOut := golora(t, "jobs", "--nats-embedded", nats)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, id+`\s+acme\s+queued\s+0/3`, out)

	done := make(chan int)
	go func() {
		code, _, _ := golora(t, "worker", "--nats-embedded", nats, "--name", "w", "--exit-when-idle", "2s")
		done <- code
	}()
	require.Equal(t, 0, <-done)
	code, out, errOut = golora(t, "jobs", "--nats-embedded", nats)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, id+`\s+acme\s+done\s+3/3\s+\S+\s+v1\s+w\s+1`, out)
	code, out, errOut = golora(t, "jobs", "--nats-embedded", nats, "--verify")
	require.Equal(t, 0, code, errOut+out)
	require.Contains(t, out, "1 jobs, 1 adapters, 0 left in the queue, 0 problems")

	code, _, errOut = golora(t, "jobs")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "--nats")
}
