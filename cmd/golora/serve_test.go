package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
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
