package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/model"
)

// adapterFiles are the files of an adapter version: PEFT's config and
// weights, as lora.Save writes them.
var adapterFiles = []string{lora.ConfigFile, lora.WeightsFile}

// Version is one immutable version of a named adapter, as recorded in the
// adapter index.
type Version struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Job is the job that trained it and Base its base model id.
	Job  string `json:"job"`
	Base string `json:"base"`
	// Digests are the object store's digests of adapterFiles, by file name.
	Digests map[string]string `json:"digests"`
	Created time.Time         `json:"created"`
}

// indexHistory is how many past values the adapter index keeps per key
// (JetStream's most): a job redelivered after its worker died finds the
// version number it was given among the last indexHistory allocations.
const indexHistory = 64

func latestKey(name string) string { return "latest." + name }
func nextKey(name string) string   { return "next." + name }

func versionObject(name string, version int, file string) string {
	return fmt.Sprintf("%s/v%d/%s", name, version, file)
}

// allocateVersion returns a version number of name that no other job has
// been given: one more than the last, by compare-and-set on next.NAME, whose
// value is "N JOB". A job asking again gets the number it was given before,
// found in the key's history: a worker killed between allocating and
// recording the number in the job's state must not leave a gap in the
// versions when the job is redelivered. The history's last entry is the
// counter's current value, so the first attempt reads the key once.
func (c *Client) allocateVersion(ctx context.Context, name, job string) (int, error) {
	var hist []jetstream.KeyValueEntry
	err := retry(ctx, func(ctx context.Context) (err error) {
		hist, err = c.index.History(ctx, nextKey(name))
		return err
	})
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("jobs: adapter %s: reading its version counter: %w", name, err)
	}
	var last jetstream.KeyValueEntry
	for _, e := range hist {
		n, owner, err := parseCounter(name, e)
		if err != nil {
			return 0, err
		}
		if owner == job {
			return n, nil
		}
		last = e
	}
	for {
		n, rev := 1, uint64(0)
		if last != nil {
			prev, _, err := parseCounter(name, last)
			if err != nil {
				return 0, err
			}
			n, rev = prev+1, last.Revision()
		}
		_, err := casPut(ctx, c.index, nextKey(name), []byte(fmt.Sprintf("%d %s", n, job)), rev)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("jobs: adapter %s: allocating a version: %w", name, err)
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		// Another job took the number: read the counter again.
		switch last, err = kvGet(ctx, c.index, nextKey(name)); {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			last = nil
		case err != nil:
			return 0, fmt.Errorf("jobs: adapter %s: allocating a version: %w", name, err)
		}
	}
}

// parseCounter splits an entry "N JOB" of next.NAME.
func parseCounter(name string, e jetstream.KeyValueEntry) (n int, job string, err error) {
	num, job, _ := strings.Cut(string(e.Value()), " ")
	if n, err = strconv.Atoi(num); err != nil {
		return 0, "", fmt.Errorf("jobs: adapter %s: version counter %q: %w", name, e.Value(), err)
	}
	return n, job, nil
}

// publishVersion uploads the adapter files in dir as version v.Version of
// v.Name and points latest.NAME at it unless a later version is already
// there.
func (c *Client) publishVersion(ctx context.Context, dir string, v Version) error {
	v.Digests = map[string]string{}
	for _, f := range adapterFiles {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return fmt.Errorf("jobs: adapter %s v%d: %w", v.Name, v.Version, err)
		}
		info, err := putObject(ctx, c.files, versionObject(v.Name, v.Version, f), data)
		if err != nil {
			return fmt.Errorf("jobs: adapter %s v%d: uploading %s: %w", v.Name, v.Version, f, err)
		}
		v.Digests[f] = info.Digest
	}
	js, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("jobs: adapter %s v%d: %w", v.Name, v.Version, err)
	}
	for {
		cur, rev, err := c.latest(ctx, v.Name)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = casPut(ctx, c.index, latestKey(v.Name), js, 0)
		case err != nil:
			return err
		case cur.Version >= v.Version:
			return nil
		default:
			_, err = casPut(ctx, c.index, latestKey(v.Name), js, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("jobs: adapter %s v%d: updating the latest version: %w", v.Name, v.Version, err)
		}
	}
}

func (c *Client) latest(ctx context.Context, name string) (Version, uint64, error) {
	e, err := kvGet(ctx, c.index, latestKey(name))
	if err != nil {
		return Version{}, 0, fmt.Errorf("jobs: adapter %s: %w", name, err)
	}
	var v Version
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return Version{}, 0, fmt.Errorf("jobs: adapter %s: index entry: %w", name, err)
	}
	return v, e.Revision(), nil
}

// ErrNoAdapter is returned (wrapped) for an adapter name with no version.
var ErrNoAdapter = errors.New("no such adapter")

// AdapterSource gives serving replicas the adapters the workers publish: it
// downloads a version's files into a local cache directory (one
// subdirectory per version, never changed once complete) and watches the
// index for new versions. It is safe for concurrent use.
type AdapterSource struct {
	c   *Client
	dir string
}

// Adapters returns an AdapterSource caching files under cacheDir.
func (c *Client) Adapters(cacheDir string) *AdapterSource {
	return &AdapterSource{c: c, dir: cacheDir}
}

// Latest returns the latest version of the adapter name; the error wraps
// ErrNoAdapter when it has none.
func (s *AdapterSource) Latest(ctx context.Context, name string) (Version, error) {
	if err := checkAdapterName(name); err != nil {
		return Version{}, err
	}
	v, _, err := s.c.latest(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Version{}, fmt.Errorf("jobs: adapter %q: %w", name, ErrNoAdapter)
	}
	return v, err
}

// List returns the latest version of every adapter.
func (s *AdapterSource) List(ctx context.Context) ([]Version, error) {
	keys, err := s.c.index.ListKeysFiltered(ctx, latestKey("*"))
	if err != nil {
		return nil, fmt.Errorf("jobs: listing adapters: %w", err)
	}
	var out []Version
	for k := range keys.Keys() {
		v, err := s.Latest(ctx, strings.TrimPrefix(k, "latest."))
		if errors.Is(err, ErrNoAdapter) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Open downloads the latest version of the adapter name (unless cached) and
// returns the directory holding its PEFT files, ready for lora.LoadFor.
func (s *AdapterSource) Open(ctx context.Context, name string) (string, Version, error) {
	v, err := s.Latest(ctx, name)
	if err != nil {
		return "", Version{}, err
	}
	dir, err := s.fetch(ctx, v.Name, v.Version)
	return dir, v, err
}

// OpenVersion downloads version n of the adapter name (unless cached) and
// returns its directory.
func (s *AdapterSource) OpenVersion(ctx context.Context, name string, n int) (string, error) {
	if err := checkAdapterName(name); err != nil {
		return "", err
	}
	if n < 1 {
		return "", fmt.Errorf("jobs: adapter %s: version %d: versions start at 1", name, n)
	}
	return s.fetch(ctx, name, n)
}

// Load opens the latest version of name and loads it for base.
func (s *AdapterSource) Load(ctx context.Context, name string, base *model.Weights) (*lora.Adapter, Version, error) {
	dir, v, err := s.Open(ctx, name)
	if err != nil {
		return nil, Version{}, err
	}
	a, err := lora.LoadFor(dir, base)
	if err != nil {
		return nil, Version{}, fmt.Errorf("jobs: adapter %s v%d: %w", name, v.Version, err)
	}
	return a, v, nil
}

// fetch makes cacheDir/NAME/vN hold the version's files. The files are
// downloaded into a directory atomicfile.WriteDir puts in place when
// complete, so a directory that exists is whole; the object store checks
// each file's digest as it is read.
func (s *AdapterSource) fetch(ctx context.Context, name string, n int) (string, error) {
	dir := filepath.Join(s.dir, name, fmt.Sprintf("v%d", n))
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	var downloadErr error
	err := atomicfile.WriteDir(dir, func(tmp string) error {
		downloadErr = s.download(ctx, tmp, name, n)
		return downloadErr
	})
	if err == nil {
		return dir, nil
	}
	// Another download of the same version may have won the race: its copy
	// is as good as this one.
	if _, serr := os.Stat(dir); serr == nil {
		return dir, nil
	}
	if downloadErr != nil {
		return "", downloadErr
	}
	return "", fmt.Errorf("jobs: adapter cache: %w", err)
}

// download writes the files of version n of the named adapter into dir.
func (s *AdapterSource) download(ctx context.Context, dir, name string, n int) error {
	for _, f := range adapterFiles {
		data, err := getObject(ctx, s.c.files, versionObject(name, n, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, f), data, 0o644)
		}
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return fmt.Errorf("jobs: adapter %s v%d: %s: %w", name, n, f, ErrNoAdapter)
		}
		if err != nil {
			return fmt.Errorf("jobs: adapter %s v%d: downloading %s: %w", name, n, f, err)
		}
	}
	return nil
}

// Update reports a new latest version of an adapter (or, with Deleted, that
// the name was removed).
type Update struct {
	Version
	Deleted bool
	// Initial marks the versions that existed when Watch started; the first
	// Update without it (if any) is a change made since.
	Initial bool
}

// Watch reports the latest version of every adapter, then every change to
// a latest version, until ctx is done; then it closes the channel. A replica
// that hot-loads adapters calls Open for each update of a name it serves.
func (s *AdapterSource) Watch(ctx context.Context) (<-chan Update, error) {
	w, err := s.c.index.Watch(ctx, latestKey("*"))
	if err != nil {
		return nil, fmt.Errorf("jobs: watching adapters: %w", err)
	}
	out := make(chan Update)
	go func() {
		defer close(out)
		defer w.Stop()
		initial := true
		for {
			var e jetstream.KeyValueEntry
			var ok bool
			select {
			case <-ctx.Done():
				return
			case e, ok = <-w.Updates():
			}
			if !ok {
				return
			}
			if e == nil { // the end of the initial values
				initial = false
				continue
			}
			u := Update{Initial: initial}
			if e.Operation() != jetstream.KeyValuePut {
				u.Deleted, u.Name = true, strings.TrimPrefix(e.Key(), "latest.")
			} else if err := json.Unmarshal(e.Value(), &u.Version); err != nil {
				continue // not written by this package
			}
			select {
			case out <- u:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
