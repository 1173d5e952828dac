// Package fsutil reads the files golora is given with the same two rules
// everywhere: the file must be a regular file (not a FIFO, a device or a
// directory, whatever a symbolic link points to), and no larger than a limit
// the caller states, so that no input can hang a command or exhaust memory.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrNotRegular is wrapped by the errors of Open and ReadRegular for a path
// that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by the error of ReadRegular for a file over its
// limit.
var ErrTooLarge = errors.New("file too large")

// Open opens path for reading if it is a regular file (after following
// symbolic links). It never blocks on a FIFO.
func Open(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, st.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	// The path may have been replaced between Stat and Open.
	if st, err = f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%s: %w", path, ErrNotRegular)
		}
		return nil, err
	}
	return f, nil
}

// ReadRegular reads the regular file at path, refusing one of more than
// limit bytes with an error that names the file and the limit.
func ReadRegular(path string, limit int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %w: %d bytes, the limit is %d", path, ErrTooLarge, st.Size(), limit)
	}
	// The file may grow while it is read: read at most limit+1 bytes.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %w: over the limit of %d bytes", path, ErrTooLarge, limit)
	}
	return data, nil
}

// Limits on the files golora reads whole. A JSON configuration is a few
// kilobytes (tokenizer_config.json with chat templates, and the index of a
// sharded checkpoint, reach megabytes); a tokenizer (tokenizer.json,
// tokenizer.bin) tens of megabytes.
const (
	ConfigLimit    = 64 << 20
	TokenizerLimit = 1 << 30
)
