//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || illumos)

package dirlock

import (
	"errors"
	"io/fs"
	"os"
)

// lockFile creates path exclusively: its existence is the lock.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil, ErrLocked
	}
	return f, err
}

func unlockFile(f *os.File, path string) error {
	f.Close()
	return os.Remove(path)
}
