//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly || illumos

package dirlock

import (
	"errors"
	"os"
	"syscall"
)

// lockFile opens path and takes an exclusive flock on it. The file stays
// after Release: removing it would let a process that opened it before the
// removal lock a file no one else sees.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, ErrLocked
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func unlockFile(f *os.File, path string) error {
	f.Truncate(0)
	return f.Close() // closing the descriptor releases the flock
}
