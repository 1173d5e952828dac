package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
)

// lockedBuffer is a bytes buffer safe to read while the command writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServe starts golora serve on a free loopback port with one adapter,
// completes a prompt on it, and stops it with the context (an interrupt).
func TestServe(t *testing.T) {
	dir := t.TempDir()
	base, err := model.Default()
	require.NoError(t, err)
	cfg := lora.DefaultConfig()
	cfg.TargetModules = lora.ModuleRegex(lora.AllLinear)
	a, err := lora.New(base.Weights, cfg, 1)
	require.NoError(t, err)
	require.NoError(t, lora.Save(filepath.Join(dir, "acme"), a))

	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	code := make(chan int)
	go func() {
		code <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--adapters", dir, "--adapter-precision", "f16"}, &stdout, &stderr)
	}()
	addr := regexp.MustCompile(`on http://([0-9.:]+)/v1`)
	var url string
	for deadline := time.Now().Add(30 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := addr.FindStringSubmatch(stderr.String()); m != nil {
			url = "http://" + m[1]
		}
	}
	require.NotEmpty(t, url, "server did not start: %s", stderr.String())

	resp, err := http.Post(url+"/v1/completions", "application/json",
		strings.NewReader(`{"model":"acme","prompt":"Once upon a time","max_tokens":8,"temperature":0}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, string(body))
	var out struct {
		Choices []struct{ Text string }
		Usage   struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	require.NoError(t, json.Unmarshal(body, &out))
	require.Len(t, out.Choices, 1)
	require.Equal(t, 8, out.Usage.CompletionTokens)

	cancel()
	select {
	case c := <-code:
		require.Equal(t, 0, c, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("golora serve did not stop after the interrupt")
	}
	require.Contains(t, stdout.String(), "stopped")
}

// TestServeNATSEmbedded runs golora serve on an embedded JetStream server
// that a worker then joins: an adapter trained after the replica started is
// served at its version (the Golora-Adapter-Version header), a second
// version is hot-loaded, and an unknown adapter is a 404.
func TestServeNATSEmbedded(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("NATS_URL", "")
	nats := filepath.Join(dir, "nats")
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "quickstart", "data", "train.jsonl"))
	require.NoError(t, err)
	good := filepath.Join(dir, "good.jsonl")
	require.NoError(t, os.WriteFile(good, []byte(strings.Join(strings.SplitAfter(string(data), "\n")[:30], "")), 0o644))

	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr lockedBuffer
	code := make(chan int)
	go func() {
		code <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--nats-embedded", nats}, &stdout, &stderr)
	}()
	addr := regexp.MustCompile(`on http://([0-9.:]+)/v1`)
	var url string
	for deadline := time.Now().Add(30 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := addr.FindStringSubmatch(stderr.String()); m != nil {
			url = "http://" + m[1]
		}
	}
	require.NotEmpty(t, url, "server did not start: %s", stderr.String())
	complete := func() (int, string, string) {
		resp, err := http.Post(url+"/v1/completions", "application/json",
			strings.NewReader(`{"model":"acme","prompt":"Once upon a time","max_tokens":8,"temperature":0}`))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Golora-Adapter-Version"), string(body)
	}
	status, _, body := complete()
	require.Equal(t, http.StatusNotFound, status, body)

	train := func(seed string) {
		c, _, errOut := golora(t, "submit", "--nats-embedded", nats, "--adapter", "acme", "--data", good,
			"--steps", "2", "--batch", "2", "--seq-len", "32", "--seed", seed, "--eval-split", "0")
		require.Equal(t, 0, c, errOut)
		c, _, errOut = golora(t, "worker", "--nats-embedded", nats, "--name", "w", "--exit-when-idle", "1s")
		require.Equal(t, 0, c, errOut)
	}
	train("1")
	status, version, body := complete()
	require.Equal(t, 200, status, body)
	require.Equal(t, "v1", version)

	train("2")
	for deadline := time.Now().Add(30 * time.Second); version != "v2" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		status, version, body = complete()
		require.Equal(t, 200, status, body)
	}
	require.Equal(t, "v2", version, "v2 not served within 30 s: %s", stderr.String())
	require.Contains(t, stderr.String(), "hot-load: adapter reloaded")

	cancel()
	select {
	case c := <-code:
		require.Equal(t, 0, c, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("golora serve did not stop after the interrupt")
	}
}
