package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/serve"
)

// ServeSource is a serve.VersionedSource over an AdapterSource: a name
// resolves to its latest version, whose files are fetched into the local
// cache directory (versions are immutable, so a fetched version is never
// fetched again). Versions are reported as "vN".
type ServeSource struct {
	src *AdapterSource
}

// Serve returns the adapters of s as a source for a serve.Store.
func (s *AdapterSource) Serve() *ServeSource { return &ServeSource{src: s} }

// LoadVersion reads the latest version of the adapter name. A name with no
// version is an error wrapping serve.ErrUnknownAdapter.
func (s *ServeSource) LoadVersion(ctx context.Context, name string) (*lora.Adapter, string, error) {
	dir, v, err := s.src.Open(ctx, name)
	if errors.Is(err, ErrNoAdapter) {
		return nil, "", fmt.Errorf("%w %q (no version in the adapter index)", serve.ErrUnknownAdapter, name)
	}
	if err != nil {
		return nil, "", err
	}
	a, err := lora.Load(dir)
	if err != nil {
		return nil, "", fmt.Errorf("jobs: adapter %s v%d: %w", name, v.Version, err)
	}
	return a, versionLabel(v.Version), nil
}

// Load reads the latest version of the adapter name.
func (s *ServeSource) Load(ctx context.Context, name string) (*lora.Adapter, error) {
	a, _, err := s.LoadVersion(ctx, name)
	return a, err
}

// Names lists the adapters with a version, sorted.
func (s *ServeSource) Names(ctx context.Context) ([]string, error) {
	list, err := s.src.List(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(list))
	for i, v := range list {
		names[i] = v.Name
	}
	slices.Sort(names)
	return names, nil
}

func versionLabel(n int) string { return "v" + strconv.Itoa(n) }

// parseVersionLabel returns N of "vN", or 0.
func parseVersionLabel(s string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "v"))
	if err != nil || !strings.HasPrefix(s, "v") {
		return 0
	}
	return n
}

// HotLoadEvent is what HotLoad did with one update of the adapter index.
type HotLoadEvent struct {
	Update
	// Action is "reloaded" (the store now serves Update.Version or later),
	// "unloaded" (the name was deleted), "skipped" (the store does not
	// hold the adapter, or holds that version already) or "failed" (Err
	// says why; the store keeps the version it had).
	Action string
	Err    error
	// At is when the action ended.
	At time.Time
}

// HotLoadOptions configure HotLoad.
type HotLoadOptions struct {
	// Log receives a line per reload, unload and failure; none when nil.
	Log *slog.Logger
	// Events, when set, is called after each update is handled.
	Events func(HotLoadEvent)
	// RetryWait is the pause before watching again after the watch could
	// not start or ended; 1 s when zero.
	RetryWait time.Duration
	// Resync is how often the cached adapters' versions are also compared
	// with the index directly; 5 s when zero. A watch whose server died can
	// stall, still open, until the client notices: this bounds how long a
	// replica serves an old version then.
	Resync time.Duration
}

// HotLoad keeps store, whose source is s.Serve(), serving the latest
// versions until ctx is done: it watches the adapter index and, for each new
// version of an adapter the store holds (or is loading), reloads it while
// requests run (running requests finish with the version they started
// with); a deleted name is unloaded. Adapters the store does not hold are
// left alone: they are loaded at their latest version on first request.
// When the watch ends (the connection lost for good, say) it starts again,
// and the versions it then reports as initial catch up any change missed in
// between. It returns ctx's error.
func (s *AdapterSource) HotLoad(ctx context.Context, store *serve.Store, opts HotLoadOptions) error {
	if opts.RetryWait <= 0 {
		opts.RetryWait = time.Second
	}
	if opts.Resync <= 0 {
		opts.Resync = 5 * time.Second
	}
	var events sync.Mutex // one update handled at a time, from either path
	handle := func(u Update) {
		events.Lock()
		defer events.Unlock()
		ev := hotLoad(ctx, store, u)
		ev.At = time.Now()
		report(opts, ev)
	}
	go s.resync(ctx, store, opts.Resync, handle)
	for {
		updates, err := s.Watch(ctx)
		if err == nil {
			for u := range updates {
				handle(u)
			}
		} else if opts.Log != nil {
			opts.Log.Warn("hot-load: watching the adapter index", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(opts.RetryWait):
		}
	}
}

// resync hands handle the latest version of every cached adapter whose
// cached version is older, every interval, until ctx is done.
func (s *AdapterSource) resync(ctx context.Context, store *serve.Store, interval time.Duration, handle func(Update)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, c := range store.Cached() {
			v, err := s.Latest(ctx, c.Name)
			if err != nil || parseVersionLabel(c.Version) >= v.Version {
				continue // a deleted name or a lost connection: the watch reports those
			}
			handle(Update{Version: v})
		}
	}
}

func hotLoad(ctx context.Context, store *serve.Store, u Update) HotLoadEvent {
	ev := HotLoadEvent{Update: u, Action: "skipped"}
	if u.Deleted {
		if store.Unload(u.Name) {
			ev.Action = "unloaded"
		}
		return ev
	}
	for _, c := range store.Cached() {
		if c.Name == u.Name && parseVersionLabel(c.Version) >= u.Version.Version {
			return ev // already there, or a later version loaded on demand
		}
	}
	ok, err := store.Refresh(ctx, u.Name)
	switch {
	case err != nil:
		ev.Action, ev.Err = "failed", err
	case ok:
		ev.Action = "reloaded"
	}
	return ev
}

func report(opts HotLoadOptions, ev HotLoadEvent) {
	if opts.Log != nil {
		switch ev.Action {
		case "reloaded":
			opts.Log.Info("hot-load: adapter reloaded", "adapter", ev.Name, "version", ev.Version.Version, "since_published", ev.At.Sub(ev.Created))
		case "unloaded":
			opts.Log.Info("hot-load: adapter unloaded", "adapter", ev.Name)
		case "failed":
			opts.Log.Warn("hot-load: adapter kept at its cached version", "adapter", ev.Name, "version", ev.Version.Version, "err", ev.Err)
		}
	}
	if opts.Events != nil {
		opts.Events(ev)
	}
}
