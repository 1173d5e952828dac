package serve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
)

func TestStoreLoadsOnceAndEvictsLeastRecentlyUsed(t *testing.T) {
	base := embedded(t).Weights
	dir := t.TempDir()
	names := writeAdapters(t, base, dir, 4, 2)
	src := &countingSource{Source: Dir(dir)}
	probe := NewStore(src, base, StoreOptions{})
	h, err := probe.Acquire(context.Background(), names[0])
	if err != nil {
		t.Fatal(err)
	}
	size := h.Adapter().Bytes()
	h.Release()
	src.loads.Store(0)

	var events []string
	var mu sync.Mutex
	s := NewStore(src, base, StoreOptions{MaxBytes: 2 * size, Events: func(ev StoreEvent) {
		mu.Lock()
		events = append(events, ev.Kind+":"+ev.Adapter)
		mu.Unlock()
	}})
	// 16 concurrent first requests for one name: one load.
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			h, err := s.Acquire(context.Background(), names[0])
			if err != nil {
				t.Error(err)
				return
			}
			h.Release()
		})
	}
	wg.Wait()
	if n := src.loads.Load(); n != 1 {
		t.Fatalf("16 concurrent requests for one adapter loaded it %d times, want 1", n)
	}
	acquire := func(name string) {
		t.Helper()
		h, err := s.Acquire(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		h.Release()
	}
	acquire(names[1])
	acquire(names[0]) // names[1] is now the least recently used
	acquire(names[2]) // evicts names[1]
	cached := s.Cached()
	if len(cached) != 2 || cached[0].Name != names[0] || cached[1].Name != names[2] {
		t.Fatalf("cached %+v, want %s and %s", cached, names[0], names[2])
	}
	if s.Used() != 2*size {
		t.Errorf("Used = %d, want %d", s.Used(), 2*size)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]bool{"evict:" + names[1]: true, "miss:" + names[2]: true}
	for _, ev := range events {
		delete(want, ev)
	}
	if len(want) > 0 {
		t.Errorf("events %v lack %v", events, want)
	}
}

func TestStoreNeverEvictsInUseOrPinned(t *testing.T) {
	base := embedded(t).Weights
	dir := t.TempDir()
	names := writeAdapters(t, base, dir, 3, 2)
	one := NewStore(Dir(dir), base, StoreOptions{})
	h, _ := one.Acquire(context.Background(), names[0])
	size := h.Adapter().Bytes()

	s := NewStore(Dir(dir), base, StoreOptions{MaxBytes: 2 * size})
	if err := s.Pin(context.Background(), names[0]); err != nil {
		t.Fatal(err)
	}
	held, err := s.Acquire(context.Background(), names[1])
	if err != nil {
		t.Fatal(err)
	}
	// Full of a pinned and an in-use adapter: a third waits.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Acquire(ctx, names[2]); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with the cache full of adapters in use: %v, want a deadline error", err)
	}
	done := make(chan error)
	go func() {
		h, err := s.Acquire(context.Background(), names[2])
		if err == nil {
			h.Release()
		}
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	held.Release() // now names[1] can go
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, c := range s.Cached() {
		got[c.Name] = true
	}
	if !got[names[0]] || got[names[1]] || !got[names[2]] {
		t.Errorf("cached %v, want the pinned %s and the new %s", got, names[0], names[2])
	}
}

func TestStoreRefusesBadAdaptersWithoutCachingThem(t *testing.T) {
	base := embedded(t).Weights
	dir := t.TempDir()
	writeAdapters(t, base, dir, 1, 2)
	// An adapter for a model of another width does not fit.
	other := embedded(t).Weights
	other.Config.Dim = 32
	for i := range other.Layers {
		other.Layers[i].Q.In = 32
	}
	cfg := lora.DefaultConfig()
	cfg.TargetModules = lora.ModuleNames("q_proj")
	misfit, err := lora.New(other, cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := lora.Save(filepath.Join(dir, "misfit"), misfit); err != nil {
		t.Fatal(err)
	}
	// A corrupt weights file.
	if err := os.CopyFS(filepath.Join(dir, "corrupt"), os.DirFS(filepath.Join(dir, "a0"))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "corrupt", lora.WeightsFile), []byte("not safetensors"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := NewStore(Dir(dir), base, StoreOptions{})
	for _, tc := range []struct{ name, want string }{
		{"misfit", "does not fit the base model"},
		{"corrupt", "adapter_model.safetensors"},
		{"missing", "unknown adapter"},
		{"../a0", "path separator"},
	} {
		_, err := s.Acquire(context.Background(), tc.name)
		if err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("Acquire(%q) = %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
	if c := s.Cached(); len(c) != 0 || s.Used() != 0 {
		t.Errorf("after failed loads the cache holds %+v (%d bytes), want nothing", c, s.Used())
	}
	h, err := s.Acquire(context.Background(), "a0")
	if err != nil {
		t.Fatalf("a good adapter after bad ones: %v", err)
	}
	h.Release()
	// Fixing the corrupt adapter on disk makes it load: the failure was not cached.
	if err := os.CopyFS(filepath.Join(dir, "fixed"), os.DirFS(filepath.Join(dir, "a0"))); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, "corrupt"))
	if err := os.Rename(filepath.Join(dir, "fixed"), filepath.Join(dir, "corrupt")); err != nil {
		t.Fatal(err)
	}
	if h, err := s.Acquire(context.Background(), "corrupt"); err != nil {
		t.Errorf("after fixing the file: %v", err)
	} else {
		h.Release()
	}
}

func TestStoreReloadAndUnloadKeepRunningRequestsVersion(t *testing.T) {
	base := embedded(t).Weights
	dir := t.TempDir()
	writeAdapters(t, base, dir, 1, 2)
	s := NewStore(Dir(dir), base, StoreOptions{})
	old, err := s.Acquire(context.Background(), "a0")
	if err != nil {
		t.Fatal(err)
	}
	size := old.Adapter().Bytes()
	// Replace the files with another adapter and reload.
	if err := lora.Save(filepath.Join(dir, "a0"), newAdapter(t, base, 4, 99)); err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background(), "a0"); err != nil {
		t.Fatal(err)
	}
	cur, err := s.Acquire(context.Background(), "a0")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Adapter() == old.Adapter() || cur.Adapter().Bytes() != 2*size {
		t.Fatalf("after reload the new requests got the old version (%d bytes, rank 2 was %d)", cur.Adapter().Bytes(), size)
	}
	if got := s.Used(); got != 3*size {
		t.Errorf("Used = %d with the old version still in use, want %d", got, 3*size)
	}
	old.Release()
	if got := s.Used(); got != 2*size {
		t.Errorf("Used = %d after the old version's release, want %d", got, 2*size)
	}
	if !s.Unload("a0") {
		t.Fatal("Unload of a cached adapter reported it was not cached")
	}
	if got := s.Used(); got != 2*size {
		t.Errorf("Used = %d with the unloaded adapter still in use, want %d", got, 2*size)
	}
	cur.Release()
	if got := s.Used(); got != 0 {
		t.Errorf("Used = %d after everything was released, want 0", got)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// versionedSource serves the adapter of seed seeds[name] as version
// "vSEED", for the refresh tests.
type versionedSource struct {
	base  *model.Weights
	mu    sync.Mutex
	seeds map[string]uint64
	t     testing.TB
}

func (v *versionedSource) set(name string, seed uint64) {
	v.mu.Lock()
	v.seeds[name] = seed
	v.mu.Unlock()
}

func (v *versionedSource) LoadVersion(_ context.Context, name string) (*lora.Adapter, string, error) {
	v.mu.Lock()
	seed, ok := v.seeds[name]
	v.mu.Unlock()
	if !ok {
		return nil, "", fmt.Errorf("%w %q", ErrUnknownAdapter, name)
	}
	return newAdapter(v.t, v.base, 2, seed), fmt.Sprintf("v%d", seed), nil
}

func (v *versionedSource) Load(ctx context.Context, name string) (*lora.Adapter, error) {
	a, _, err := v.LoadVersion(ctx, name)
	return a, err
}

func (v *versionedSource) Names(context.Context) ([]string, error) { return nil, nil }

// TestStoreRefreshVersions checks that the Store keeps a VersionedSource's
// versions, that Refresh reloads a cached adapter (running requests keep
// theirs) and leaves an uncached one alone.
func TestStoreRefreshVersions(t *testing.T) {
	ctx := context.Background()
	base := embedded(t).Weights
	src := &versionedSource{base: base, seeds: map[string]uint64{"a": 1, "b": 1}, t: t}
	s := NewStore(src, base, StoreOptions{})
	h1, err := s.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got := h1.Adapter().Version(); got != "v1" {
		t.Fatalf("version %q, want v1", got)
	}
	src.set("a", 2)
	src.set("b", 2)
	if ok, err := s.Refresh(ctx, "b"); ok || err != nil {
		t.Fatalf("Refresh of an uncached adapter = %v, %v; want false, nil", ok, err)
	}
	if len(s.Cached()) != 1 {
		t.Fatalf("Refresh of an uncached adapter loaded it: %+v", s.Cached())
	}
	if ok, err := s.Refresh(ctx, "a"); !ok || err != nil {
		t.Fatalf("Refresh of a cached adapter = %v, %v; want true, nil", ok, err)
	}
	if got := h1.Adapter().Version(); got != "v1" {
		t.Fatalf("a running request's adapter changed to %q", got)
	}
	h1.Release()
	h2, err := s.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Release()
	if got := h2.Adapter().Version(); got != "v2" {
		t.Fatalf("after Refresh: version %q, want v2", got)
	}
	if c := s.Cached(); len(c) != 1 || c[0].Version != "v2" {
		t.Fatalf("Cached() = %+v, want a at v2", c)
	}
}
