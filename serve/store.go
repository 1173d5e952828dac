package serve

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/golora/golora/internal/hugemem"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
)

// Source finds LoRA adapters by name: a directory, an object store, a
// database. Its methods must be safe for concurrent use.
type Source interface {
	// Load reads the named adapter. An unknown name is an error wrapping
	// ErrUnknownAdapter.
	Load(ctx context.Context, name string) (*lora.Adapter, error)
	// Names lists the adapters the source holds.
	Names(ctx context.Context) ([]string, error)
}

// VersionedSource is a Source that also tells which version of an adapter
// it read, for sources whose names point to changing versions (an object
// store where a name resolves to its latest version). The Store keeps the
// version with the cached adapter: Adapter.Version, CachedAdapter.Version and
// Stream.AdapterVersion report it.
type VersionedSource interface {
	Source
	// LoadVersion reads the named adapter and returns its version.
	LoadVersion(ctx context.Context, name string) (*lora.Adapter, string, error)
}

// ErrUnknownAdapter is wrapped by the errors for a name no source holds.
var ErrUnknownAdapter = errors.New("serve: unknown adapter")

// Dir is a Source reading PEFT adapters (adapter_config.json and
// adapter_model.safetensors, as lora.Save writes them) from the
// subdirectories of a directory: adapter "acme" is the directory Dir/acme.
type Dir string

// Load reads the adapter in the subdirectory name.
func (d Dir) Load(_ context.Context, name string) (*lora.Adapter, error) {
	dir, err := d.path(name)
	if err != nil {
		return nil, err
	}
	return lora.Load(dir)
}

// path returns the directory of the named adapter.
func (d Dir) path(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	dir := filepath.Join(string(d), name)
	if _, err := os.Stat(filepath.Join(dir, lora.ConfigFile)); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w %q (no %s in %s)", ErrUnknownAdapter, name, lora.ConfigFile, dir)
	}
	return dir, nil
}

// Names lists the subdirectories holding an adapter_config.json, sorted.
func (d Dir) Names(context.Context) ([]string, error) {
	entries, err := os.ReadDir(string(d))
	if err != nil {
		return nil, fmt.Errorf("serve: adapter directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() || checkName(e.Name()) != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(string(d), e.Name(), lora.ConfigFile)); err == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// checkName refuses names that are not a single plain path element, so a
// request cannot read outside the adapter directory.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("serve: adapter name %q is not valid", name)
	case len(name) > 200:
		return fmt.Errorf("serve: adapter name of %d bytes is too long (at most 200)", len(name))
	case strings.ContainsAny(name, `/\:`) || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return fmt.Errorf("serve: adapter name %q holds a path separator or control character", name)
	}
	return nil
}

// StoreOptions configures a Store.
type StoreOptions struct {
	// MaxBytes bounds the memory of the cached adapters' matrices; zero
	// means 1 GiB. Adapters in use by running requests are never evicted;
	// a request whose adapter does not fit waits until one is released.
	// The matrices share huge pages, which the store maps up to a quarter
	// more than MaxBytes plus min(MaxBytes, 256 MiB) for the gaps adapters
	// of different sizes leave; it keeps resident only the huge pages that
	// cached adapters hold.
	MaxBytes int64
	// Precision is how cached adapters hold their matrices.
	Precision Precision
	// MaxLoads bounds the adapters read from the source at the same time;
	// 4 × GOMAXPROCS when zero. Each load in flight holds its file's pages
	// and its adapter's memory before the cache makes room for it, so the
	// bound keeps a burst of cold requests from raising the resident set by
	// one adapter per request. It is not lower because loads compete with
	// the running batch for the cores: with fewer slots, cold requests join
	// the batch later and steps run with fewer rows (on the 2-core test
	// machine, 2 slots served a cold-heavy load about 25% slower than 8).
	MaxLoads int
	// Events, if not nil, is told about hits, misses, loads and evictions
	// (for metrics). It is called with no lock held.
	Events func(StoreEvent)
}

// StoreEvent is what happened in a Store.
type StoreEvent struct {
	Kind    string // "hit", "miss", "evict", "load_error", "pool_fallback" (loaded outside the pool of huge pages, which had no room)
	Adapter string
	Err     error // for "load_error"
}

// Store is an in-memory cache of adapters for one base model in front of a
// Source, bounded in bytes with least-recently-used eviction. Acquire loads an
// unknown name on first use, once however many requests ask for it at the same
// time; an adapter that fails to load or does not fit the base is refused with
// its error and is not cached, so the next request tries again. Load, Unload
// and Pin work while requests are running: a running request holds a
// reference to the adapter it started with, which is never evicted or changed
// under it. Its methods are safe for concurrent use.
type Store struct {
	src  Source
	base *model.Weights
	opts StoreOptions

	mu       sync.Mutex
	entries  map[string]*entry // the current version of each cached adapter
	lru      *list.List        // unreferenced, unpinned current entries; front is the most recent
	loading  map[string]*flight
	pool     *hugemem.Pool // the memory of the adapters' matrices
	used     int64         // bytes of every entry still referenced or cached, replaced ones included, and of loads in flight
	released chan struct{} // closed and replaced when bytes may have become free
	loads    chan struct{} // a token per load in flight (MaxLoads)
}

// entry is one loaded version of an adapter.
type entry struct {
	ad      *Adapter
	refs    int
	pinned  bool
	current bool          // still the version entries maps to
	elem    *list.Element // in lru when refs == 0, !pinned and current
}

// flight is a load in progress that later requests for the name wait on.
type flight struct {
	done chan struct{}
	e    *entry
	err  error
}

// NewStore returns an empty Store of adapters from src checked against base.
func NewStore(src Source, base *model.Weights, opts StoreOptions) *Store {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.MaxLoads <= 0 {
		opts.MaxLoads = 4 * runtime.GOMAXPROCS(0)
	}
	return &Store{
		src: src, base: base, opts: opts,
		pool:     newAdapterPool(opts.MaxBytes),
		entries:  make(map[string]*entry),
		lru:      list.New(),
		loading:  make(map[string]*flight),
		released: make(chan struct{}),
		loads:    make(chan struct{}, opts.MaxLoads),
	}
}

// Handle is a reference to a cached adapter, held while a request uses it.
type Handle struct {
	s    *Store
	e    *entry
	once sync.Once
}

// Adapter returns the adapter the handle refers to.
func (h *Handle) Adapter() *Adapter { return h.e.ad }

// Release gives the reference back; the adapter may then be evicted. Calls
// after the first do nothing.
func (h *Handle) Release() { h.once.Do(func() { h.s.release(h.e) }) }

// Acquire returns a reference to the named adapter, loading it if it is not
// cached. It waits, until ctx is done, while the cache is too full of
// adapters in use to take it.
func (s *Store) Acquire(ctx context.Context, name string) (*Handle, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	missed := false // a request that waited for a load is a miss, not a hit
	for {
		s.mu.Lock()
		if e := s.entries[name]; e != nil {
			s.ref(e)
			s.mu.Unlock()
			if !missed {
				s.event(StoreEvent{Kind: "hit", Adapter: name})
			}
			return &Handle{s: s, e: e}, nil
		}
		f := s.loading[name]
		lead := f == nil
		if lead {
			f = &flight{done: make(chan struct{})}
			s.loading[name] = f
		}
		s.mu.Unlock()
		if !missed {
			missed = true
			s.event(StoreEvent{Kind: "miss", Adapter: name})
		}
		if lead {
			s.load(ctx, name, f)
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err != nil {
			if ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
				continue // the request that led the load went away; this one has not
			}
			return nil, f.err
		}
		// The loaded entry may have been unloaded or evicted already; look
		// again.
	}
}

// load reads name, prepares it and installs it as the current version,
// replacing the current one if any, then ends the flight f. Room is made
// (idle adapters evicted, or adapters in use waited for) before the values
// are read, so that the cache's memory, loads included, stays within
// MaxBytes.
func (s *Store) load(ctx context.Context, name string, f *flight) {
	var ad *Adapter
	var err error
	var reserved int64
	reserve := func(need int64) error {
		if need > s.opts.MaxBytes {
			return &AdapterError{name, fmt.Errorf("needs %d bytes, more than the whole adapter cache (%d)", need, s.opts.MaxBytes)}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := s.makeRoom(ctx, need); err != nil {
			return err
		}
		s.used += need
		reserved = need
		return nil
	}
	select {
	case s.loads <- struct{}{}:
		ad, err = s.read(ctx, name, reserve)
		<-s.loads
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.mu.Lock()
	if err == nil && ad.bytes != reserved {
		ad.free()
		err = &AdapterError{name, fmt.Errorf("serve: internal error: %d bytes reserved for %d", reserved, ad.bytes)}
	}
	if err != nil && reserved > 0 {
		s.used -= reserved
		close(s.released)
		s.released = make(chan struct{})
	}
	if err == nil {
		if old := s.entries[name]; old != nil {
			s.retire(old)
		}
		e := &entry{ad: ad, current: true}
		s.entries[name] = e
		s.idle(e)
		f.e = e
	}
	f.err = err
	delete(s.loading, name)
	close(f.done)
	s.mu.Unlock()
	if err != nil {
		s.event(StoreEvent{Kind: "load_error", Adapter: name, Err: err})
	} else if ad.ownMem {
		s.event(StoreEvent{Kind: "pool_fallback", Adapter: name})
	}
}

// AdapterError is the error for an adapter that could not be read, is
// corrupt, or does not fit the base model.
type AdapterError struct {
	Name string
	Err  error
}

func (e *AdapterError) Error() string { return fmt.Sprintf("serve: adapter %q: %v", e.Name, e.Err) }

// Unwrap returns the cause.
func (e *AdapterError) Unwrap() error { return e.Err }

// read loads and prepares an adapter without holding the lock. Once the
// adapter's size is known and before its values are read into cache memory,
// it calls reserve, which makes room in the cache and counts the bytes as
// used: loads in flight count against MaxBytes like the adapters cached.
func (s *Store) read(ctx context.Context, name string, reserve func(int64) error) (*Adapter, error) {
	if d, ok := s.src.(Dir); ok {
		return s.readDir(d, name, reserve)
	}
	var a *lora.Adapter
	var version string
	var err error
	if vs, ok := s.src.(VersionedSource); ok {
		a, version, err = vs.LoadVersion(ctx, name)
	} else {
		a, err = s.src.Load(ctx, name)
	}
	if err != nil {
		if errors.Is(err, ErrUnknownAdapter) {
			return nil, err
		}
		return nil, &AdapterError{name, err}
	}
	if err := a.Check(s.base); err != nil {
		return nil, &AdapterError{name, fmt.Errorf("does not fit the base model: %w", err)}
	}
	if err := reserve(adapterBytes(loraPairs{a}.pairs(), s.opts.Precision)); err != nil {
		return nil, err
	}
	ad, err := prepare(name, loraPairs{a}, s.base, s.opts.Precision, s.pool)
	if err != nil {
		return nil, &AdapterError{name, err}
	}
	ad.version = version
	return ad, nil
}

// readDir reads an adapter of a Dir straight into its cache memory: the
// file's values are decoded into place, with no float32 copy of the adapter
// on the Go heap.
func (s *Store) readDir(d Dir, name string, reserve func(int64) error) (*Adapter, error) {
	dir, err := d.path(name)
	if err != nil {
		return nil, err
	}
	r, err := lora.OpenReader(dir)
	if err != nil {
		return nil, &AdapterError{name, err}
	}
	defer r.Close()
	if err := r.Check(s.base); err != nil {
		return nil, &AdapterError{name, fmt.Errorf("does not fit the base model: %w", err)}
	}
	if err := reserve(adapterBytes(readerPairs{r}.pairs(), s.opts.Precision)); err != nil {
		return nil, err
	}
	ad, err := prepare(name, readerPairs{r}, s.base, s.opts.Precision, s.pool)
	if err != nil {
		return nil, &AdapterError{name, err}
	}
	return ad, nil
}

// poolChunk is the most memory the adapter pool maps at a time: 250
// adapters of a stories15M-shaped base at rank 8 (about 1 MB each in
// float32), most of one of a 7B model at rank 16. A mapping costs only the
// huge pages its adapters hold (the pool returns the others), but an
// adapter cannot span two, and the end of each is a huge page partly used:
// a 100-adapter cache of the former (100.2 MiB) held 104 MiB of huge pages
// in 32 MiB chunks, and holds 102 MiB in one chunk.
const poolChunk = 256 << 20

// newAdapterPool returns the pool for a cache of maxBytes: chunks no larger
// than the cache (but a huge page at least), and room for a quarter more
// than it plus a chunk, for the gaps that adapters of different sizes leave
// and a chunk's unused end. An adapter that finds no room in it takes a
// mapping of its own.
func newAdapterPool(maxBytes int64) *hugemem.Pool {
	chunk := int(min(maxBytes, poolChunk))
	p, err := hugemem.NewPool(chunk, int(min(maxBytes+maxBytes/4, math.MaxInt/2))+chunk)
	if err != nil {
		panic(err) // chunk and limit are positive
	}
	return p
}

// adapterBytes is the cache memory prepare takes for pairs in precision
// prec (its Adapter's bytes), known before any value is read.
func adapterBytes(pairs []pairShape, prec Precision) int64 {
	elem := int64(4)
	if prec == Float16 {
		elem = 2
	}
	var n int64
	for _, p := range pairs {
		n += elem * int64(p.r) * int64(p.in+p.out)
	}
	return n
}

// makeRoom evicts idle adapters, least recently used first, until need more
// bytes fit, waiting for adapters in use to be released. s.mu is held; it is
// released while waiting.
func (s *Store) makeRoom(ctx context.Context, need int64) error {
	for s.used+need > s.opts.MaxBytes {
		if back := s.lru.Back(); back != nil {
			e := back.Value.(*entry)
			s.retire(e)
			name := e.ad.name
			s.mu.Unlock()
			s.event(StoreEvent{Kind: "evict", Adapter: name})
			s.mu.Lock()
			continue
		}
		wait := s.released
		s.mu.Unlock()
		select {
		case <-wait:
			s.mu.Lock()
		case <-ctx.Done():
			s.mu.Lock()
			return fmt.Errorf("serve: waiting for room in the adapter cache (%d of %d bytes in use): %w", s.used, s.opts.MaxBytes, ctx.Err())
		}
	}
	return nil
}

// retire removes e from the cache: it is forgotten once its last reference
// is released. s.mu is held.
func (s *Store) retire(e *entry) {
	if !e.current {
		return
	}
	e.current = false
	if s.entries[e.ad.name] == e {
		delete(s.entries, e.ad.name)
	}
	if e.elem != nil {
		s.lru.Remove(e.elem)
		e.elem = nil
	}
	if e.refs == 0 {
		s.free(e)
	}
}

// free returns the memory of an entry that has left the cache and that
// nobody uses any more. s.mu is held.
func (s *Store) free(e *entry) {
	e.ad.free()
	s.used -= e.ad.bytes
	close(s.released)
	s.released = make(chan struct{})
}

// ref takes a reference to e. s.mu is held.
func (s *Store) ref(e *entry) {
	if e.elem != nil {
		s.lru.Remove(e.elem)
		e.elem = nil
	}
	e.refs++
}

// idle puts an unreferenced current entry at the front of the LRU list.
// s.mu is held.
func (s *Store) idle(e *entry) {
	if e.refs == 0 && !e.pinned && e.current && e.elem == nil {
		e.elem = s.lru.PushFront(e)
	}
}

func (s *Store) release(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.refs--
	if !e.current {
		if e.refs == 0 {
			s.free(e)
		}
		return
	}
	s.idle(e)
	if e.refs == 0 {
		// Waiters for room can now evict it.
		close(s.released)
		s.released = make(chan struct{})
	}
}

// Load reads the named adapter now, replacing the cached version if there is
// one (a reload: requests already running keep the version they started
// with, new ones get the new one). On error the cached version, if any,
// stays.
func (s *Store) Load(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	for {
		s.mu.Lock()
		f := s.loading[name]
		if f == nil {
			f = &flight{done: make(chan struct{})}
			s.loading[name] = f
			s.mu.Unlock()
			s.load(ctx, name, f)
			return f.err
		}
		s.mu.Unlock()
		// Another load of the name is under way; it may have read the old
		// files, so wait for it and load again.
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Refresh reloads the named adapter, as Load does, if it is cached or being
// loaded, and reports whether it was. A replica told that a new version of an
// adapter was published calls it: adapters it does not serve stay unloaded,
// and a load that had started before the publication is followed by one of
// the new version.
func (s *Store) Refresh(ctx context.Context, name string) (bool, error) {
	s.mu.Lock()
	known := s.entries[name] != nil || s.loading[name] != nil
	s.mu.Unlock()
	if !known {
		return false, nil
	}
	return true, s.Load(ctx, name)
}

// Unload drops the named adapter from the cache (and unpins it). Requests
// using it finish with it; its memory is returned when the last one ends.
// It reports whether the adapter was cached.
func (s *Store) Unload(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[name]
	if e == nil {
		return false
	}
	e.pinned = false
	s.retire(e)
	return true
}

// Pin keeps the named adapter, loading it if needed, in the cache until
// Unpin or Unload.
func (s *Store) Pin(ctx context.Context, name string) error {
	h, err := s.Acquire(ctx, name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	h.e.pinned = true
	s.mu.Unlock()
	h.Release()
	return nil
}

// Unpin lets the named adapter be evicted again.
func (s *Store) Unpin(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[name]; e != nil && e.pinned {
		e.pinned = false
		s.idle(e)
	}
}

// CachedAdapter describes an adapter in the cache.
type CachedAdapter struct {
	Name    string
	Version string // as a VersionedSource told; empty for other sources
	Bytes   int64
	InUse   int // running requests holding it
	Pinned  bool
}

// Cached lists the cached adapters by name.
func (s *Store) Cached() []CachedAdapter {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]CachedAdapter, 0, len(s.entries))
	for name, e := range s.entries {
		out = append(out, CachedAdapter{Name: name, Version: e.ad.version, Bytes: e.ad.bytes, InUse: e.refs, Pinned: e.pinned})
	}
	slices.SortFunc(out, func(a, b CachedAdapter) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Used returns the bytes held by adapters, cached or still in use after an
// unload or reload, and reserved by loads in flight.
func (s *Store) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// Names lists the adapters of the source and those cached, sorted.
func (s *Store) Names(ctx context.Context) ([]string, error) {
	names, err := s.src.Names(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range s.Cached() {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func (s *Store) event(ev StoreEvent) {
	if s.opts.Events != nil {
		s.opts.Events(ev)
	}
}
