//go:build unix

package model

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/golora/golora/internal/fsutil"
)

// writeHFDir writes the embedded model as a Hugging Face directory.
func writeHFDir(t *testing.T) string {
	t.Helper()
	ck, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ck.WriteTokenizer(dir); err != nil {
		t.Fatal(err)
	}
	if err := WriteHF(dir, ck.Weights, F32); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLoadRefusesSpecialFiles replaces each file Load reads whole by a link
// to /dev/zero or by a FIFO: Load must refuse it at once, naming it.
func TestLoadRefusesSpecialFiles(t *testing.T) {
	src := writeHFDir(t)
	for _, name := range []string{"config.json", "tokenizer.bin"} {
		for _, kind := range []string{"/dev/zero", "fifo"} {
			dir := t.TempDir()
			entries, _ := os.ReadDir(src)
			for _, e := range entries {
				if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, name)
			os.Remove(path)
			var err error
			if kind == "fifo" {
				err = syscall.Mkfifo(path, 0o644)
			} else {
				err = os.Symlink(kind, path)
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = Load(context.Background(), dir, LoadOptions{})
			if !errors.Is(err, fsutil.ErrNotRegular) {
				t.Errorf("%s as %s: err %v", name, kind, err)
			}
		}
	}
	if _, err := Load(context.Background(), src, LoadOptions{}); err != nil {
		t.Fatalf("the unchanged directory: %v", err)
	}
}

// TestLoadWithoutTokenizer loads a directory without tokenizer: an error
// wrapping ErrNoTokenizer, unless the tokenizer is optional.
func TestLoadWithoutTokenizer(t *testing.T) {
	dir := writeHFDir(t)
	if err := os.Remove(filepath.Join(dir, "tokenizer.bin")); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(context.Background(), dir, LoadOptions{}); !errors.Is(err, ErrNoTokenizer) {
		t.Errorf("err %v", err)
	}
	ck, err := Load(context.Background(), dir, LoadOptions{TokenizerOptional: true})
	if err != nil || ck.Tokenizer != nil {
		t.Errorf("optional: %v, tokenizer %v", err, ck.Tokenizer)
	}
}
