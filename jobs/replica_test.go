package jobs

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
	"github.com/golora/golora/serve"
)

// publishRandom publishes, as the next version of name, an all-linear
// rank-2 adapter for base whose A and B are both random (seeded), so that
// it changes the model's output, as a worker would publish a trained one.
func publishRandom(t testing.TB, c *Client, base *model.Weights, name string, seed uint64) Version {
	t.Helper()
	ctx := context.Background()
	cfg := lora.DefaultConfig()
	cfg.R, cfg.Alpha = 2, 4
	cfg.TargetModules = lora.ModuleRegex(lora.AllLinear)
	cfg.InitLoRAWeights = lora.InitLinearDefault
	a, err := lora.New(base, cfg, seed)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), name)
	require.NoError(t, lora.Save(dir, a))
	job := fmt.Sprintf("test-%s-%d", name, seed)
	n, err := c.allocateVersion(ctx, name, job)
	require.NoError(t, err)
	v := Version{Name: name, Version: n, Job: job, Base: EmbeddedBase, Created: time.Now().UTC()}
	require.NoError(t, c.publishVersion(ctx, dir, v))
	return v
}

// replica is a serving replica fed from the adapter index: a store over
// the index, an engine, and HotLoad running until the test ends; its events
// arrive on events.
type replica struct {
	engine *serve.Engine
	store  *serve.Store
	prompt []int
	events chan HotLoadEvent
}

func startReplica(t testing.TB, c *Client) (*replica, *model.Weights) {
	t.Helper()
	ck, err := model.Default()
	require.NoError(t, err)
	src := c.Adapters(t.TempDir())
	store := serve.NewStore(src.Serve(), ck.Weights, serve.StoreOptions{})
	m, err := serve.NewBatchedModel(ck.Weights)
	require.NoError(t, err)
	engine, err := serve.NewEngine(m, store, ck.Tokenizer, serve.EngineOptions{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{
		engine: engine, store: store,
		prompt: append([]int{ck.Tokenizer.BOS()}, ck.Tokenizer.Encode("Once upon a time")...),
		events: make(chan HotLoadEvent, 100),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.HotLoad(ctx, store, HotLoadOptions{Events: func(ev HotLoadEvent) { r.events <- ev }, RetryWait: 50 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		engine.Shutdown(context.Background())
	})
	return r, ck.Weights
}

// complete runs a greedy 16-token completion with adapter name and returns
// its text and the adapter version it used.
func (r *replica) complete(ctx context.Context, name string, maxTokens int) (string, string, error) {
	st, err := r.engine.Submit(ctx, serve.Request{Adapter: name, Prompt: r.prompt, MaxTokens: maxTokens})
	if err != nil {
		return "", "", err
	}
	res := st.Result()
	return res.Text, st.AdapterVersion, res.Err
}

// waitEvent returns the next hot-load event for name, failing after 30 s.
func (r *replica) waitEvent(t testing.TB, name string) HotLoadEvent {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-r.events:
			if ev.Name == name {
				return ev
			}
		case <-timeout:
			t.Fatalf("no hot-load event for %s within 30 s", name)
		}
	}
}

// TestReplicaHotLoad runs a serving replica on an embedded server: an
// adapter published after it started is served on its first request; a new
// version is hot-loaded while a request of the old one runs (which finishes
// with the old one), and later requests use the new version (their text
// differs); a version of an adapter the replica does not hold is not loaded;
// a deleted name is unloaded.
func TestReplicaHotLoad(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t)
	_, c := connect(t, srv, Options{})
	r, base := startReplica(t, c)

	_, _, err := r.complete(ctx, "late", 16)
	require.True(t, errors.Is(err, serve.ErrUnknownAdapter), "an adapter with no version: %v", err)

	publishRandom(t, c, base, "late", 1)
	require.Equal(t, "skipped", r.waitEvent(t, "late").Action, "v1 of an adapter the replica does not hold")
	text1, ver, err := r.complete(ctx, "late", 16)
	require.NoError(t, err)
	require.Equal(t, "v1", ver)
	base0, _, err := r.complete(ctx, "", 16)
	require.NoError(t, err)
	require.NotEqual(t, base0, text1, "the adapter does not change the output")

	// A request of v1 submitted before v2 is published keeps v1 whenever
	// the reload happens.
	long, err := r.engine.Submit(ctx, serve.Request{Adapter: "late", Prompt: r.prompt, MaxTokens: 200})
	require.NoError(t, err)
	require.Equal(t, "v1", long.AdapterVersion)

	publishRandom(t, c, base, "late", 2)
	ev := r.waitEvent(t, "late")
	require.Equal(t, "reloaded", ev.Action, ev.Err)
	require.Equal(t, 2, ev.Version.Version)
	text2, ver, err := r.complete(ctx, "late", 16)
	require.NoError(t, err)
	require.Equal(t, "v2", ver)
	require.NotEqual(t, text1, text2, "v2 answers as v1 did")
	res := long.Result()
	require.NoError(t, res.Err)
	require.True(t, strings.HasPrefix(res.Text, text1), "the request of v1 submitted before the reload: %q does not start with v1's %q", res.Text, text1)

	publishRandom(t, c, base, "other", 3)
	require.Equal(t, "skipped", r.waitEvent(t, "other").Action)
	for _, ca := range r.store.Cached() {
		require.NotEqual(t, "other", ca.Name, "an adapter nobody asked for was loaded")
	}

	require.NoError(t, c.index.Delete(ctx, latestKey("late")))
	require.Equal(t, "unloaded", r.waitEvent(t, "late").Action)
	require.Empty(t, r.store.Cached())
}
