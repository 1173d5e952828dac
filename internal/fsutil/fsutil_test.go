package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "config.json")
	if err := os.WriteFile(small, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadRegular(small, 2); err != nil || string(b) != "{}" {
		t.Fatalf("%q %v", b, err)
	}
	if _, err := ReadRegular(small, 1); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "limit is 1") {
		t.Errorf("over the limit: %v", err)
	}
	if _, err := ReadRegular(dir, 1<<20); !errors.Is(err, ErrNotRegular) {
		t.Errorf("a directory: %v", err)
	}
}
