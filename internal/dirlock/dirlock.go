// Package dirlock gives one process at a time a directory to write: a lock
// file inside it, held with flock where the system has it, names the holder
// so that a second writer can say who is in the way.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File is the name of the lock file in a locked directory.
const File = ".golora.lock"

// ErrLocked is wrapped by the error of Acquire when another holder has the
// directory.
var ErrLocked = errors.New("locked by another process")

// Lock is a held directory lock.
type Lock struct {
	f    *os.File
	path string
}

// Acquire locks dir (which must exist) for this process, without waiting:
// if another holder has it the error wraps ErrLocked and names the holder
// (pid, host, start time). The lock ends with Release or when the process
// exits, even by kill -9, where flock is available; elsewhere a crashed
// holder leaves the lock file, which then has to be removed by hand.
func Acquire(dir string) (*Lock, error) {
	path := filepath.Join(dir, File)
	f, err := lockFile(path)
	if errors.Is(err, ErrLocked) {
		holder, _ := os.ReadFile(path)
		who := strings.TrimSpace(string(holder))
		if who == "" {
			who = "unknown holder"
		}
		return nil, fmt.Errorf("dirlock: %s is in use by %s (%s): %w", dir, who, path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	host, _ := os.Hostname()
	info := fmt.Sprintf("pid %d on host %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(info), 0)
	}
	if err != nil {
		unlockFile(f, path)
		return nil, fmt.Errorf("dirlock: %s: %w", path, err)
	}
	return &Lock{f: f, path: path}, nil
}

// Release gives the directory up. It is safe to call on a nil Lock and
// more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := unlockFile(l.f, l.path)
	l.f = nil
	return err
}
