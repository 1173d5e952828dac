package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// pair returns the two files of a set holding version v.
func pair(v string) []File {
	write := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	return []File{{"weights", write("weights " + v)}, {"config", write("config " + v)}}
}

// readPair reads the set as a reader would, by name; "" for a missing file.
func readPair(t *testing.T, dir string) (weights, config string) {
	t.Helper()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	return read("weights"), read("config")
}

var errCrash = errors.New("crash")

// TestWriteFilesEveryInstant stops WriteFiles after each step at which a
// crash leaves a distinct state, and checks that a reader then sees the old
// pair or the new pair, never a mix, and that the next write cleans up.
func TestWriteFilesEveryInstant(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows renames the files one by one")
	}
	defer func() { crashPoint = nil }()
	for _, first := range []bool{true, false} {
		dir := t.TempDir()
		if !first {
			must(t, WriteFiles(dir, "set", pair("old"), 0o644))
		}
		var steps []string
		crashPoint = func(s string) error { steps = append(steps, s); return nil }
		must(t, WriteFiles(dir, "set", pair("new"), 0o644))
		if len(steps) < 2 {
			t.Fatalf("only steps %q", steps)
		}
		for i := range steps {
			dir := t.TempDir()
			crashPoint = nil
			if !first {
				must(t, WriteFiles(dir, "set", pair("old"), 0o644))
			}
			n := 0
			crashPoint = func(string) error {
				if n++; n > i {
					return errCrash
				}
				return nil
			}
			if err := WriteFiles(dir, "set", pair("new"), 0o644); !errors.Is(err, errCrash) {
				t.Fatalf("crash after %q: err %v", steps[i], err)
			}
			crashPoint = nil
			w, c := readPair(t, dir)
			ok := w == "weights new" && c == "config new" || !first && w == "weights old" && c == "config old" || first && w == "" && c == ""
			if !ok {
				t.Errorf("first %v, crash after %q: reader sees %q and %q", first, steps[i], w, c)
			}
			must(t, WriteFiles(dir, "set", pair("next"), 0o644))
			if w, c := readPair(t, dir); w != "weights next" || c != "config next" {
				t.Errorf("after recovery: %q %q", w, c)
			}
			if _, err := CleanStale(dir); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 4 { // weights, config, .set, .set.v-*
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("crash after %q: after recovery and CleanStale the directory holds %q", steps[i], names)
			}
		}
	}
}

// TestWriteFilesFailureKeepsOld checks that a failing write changes nothing.
func TestWriteFilesFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	must(t, WriteFiles(dir, "set", pair("old"), 0o644))
	before, _ := os.ReadDir(dir)
	files := pair("new")
	files[1].Write = func(w io.Writer) error { io.WriteString(w, "partial"); return errors.New("disk full") }
	if err := WriteFiles(dir, "set", files, 0o644); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err %v", err)
	}
	if w, c := readPair(t, dir); w != "weights old" || c != "config old" {
		t.Errorf("reader sees %q %q", w, c)
	}
	after, _ := os.ReadDir(dir)
	if len(after) != len(before) {
		t.Errorf("%d entries before, %d after", len(before), len(after))
	}
}

// TestWriteFilesReplacesPlainFiles checks the step from regular files (as
// written before sets had links) to links.
func TestWriteFilesReplacesPlainFiles(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "weights"), []byte("weights old"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "config"), []byte("config old"), 0o644))
	must(t, WriteFiles(dir, "set", pair("new"), 0o644))
	if w, c := readPair(t, dir); w != "weights new" || c != "config new" {
		t.Errorf("reader sees %q %q", w, c)
	}
}

func TestWriteDirCompleteOrAbsent(t *testing.T) {
	parent := t.TempDir()
	out := filepath.Join(parent, "out")
	fill := func(d string) error { return os.WriteFile(filepath.Join(d, "model"), []byte("m"), 0o644) }

	failing := func(d string) error {
		os.WriteFile(filepath.Join(d, "model"), []byte("partial"), 0o644)
		return errors.New("disk full")
	}
	if err := WriteDir(out, failing); err == nil {
		t.Fatal("a failing fill succeeded")
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Fatalf("a failed WriteDir left %d entries", len(entries))
	}

	crashPoint = func(string) error { return errCrash }
	err := WriteDir(out, fill)
	crashPoint = nil
	if !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after a crash before the rename %s exists: %v", out, err)
	}
	removed, err := CleanStale(parent)
	if err != nil || len(removed) != 1 {
		t.Fatalf("CleanStale removed %q, err %v", removed, err)
	}

	must(t, os.Mkdir(out, 0o755))
	must(t, WriteDir(out, fill))
	if b, err := os.ReadFile(filepath.Join(out, "model")); err != nil || string(b) != "m" {
		t.Fatalf("%q %v", b, err)
	}
	if err := WriteDir(out, fill); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a non-empty directory: err %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
