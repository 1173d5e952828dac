// Package atomicfile writes files so that readers see either the old contents
// or the complete new contents, never a partial file.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// bufferSize is large enough that writes of big tensors go to the kernel in a
// few large chunks rather than many small ones.
const bufferSize = 1 << 20

// WriteFile writes a file at path with the bytes that write produces.
//
// The data goes to a temporary file in the same directory (so the final rename
// does not cross file systems), through a buffered writer; the temporary file
// is synced, closed and renamed over path, and then the directory is synced so
// that the rename itself survives a crash. If write or any step fails (or write
// panics), the temporary file is removed and any previous file at path is left
// untouched.
//
// The new file gets exactly perm: unlike os.WriteFile the process umask is not
// applied. If path is a symbolic link, the link itself is replaced.
func WriteFile(path string, write func(w io.Writer) error, perm fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return fmt.Errorf("atomicfile: %q names a directory, not a file", path)
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomicfile: writing %s: %w", path, err)
	}
	tmpName := tmp.Name()
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()

	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("atomicfile: writing %s: %w", path, err)
	}
	bw := bufio.NewWriterSize(tmp, bufferSize)
	if err := write(bw); err != nil {
		return fmt.Errorf("atomicfile: writing %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("atomicfile: writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("atomicfile: syncing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("atomicfile: closing %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("atomicfile: renaming into place: %w", err)
	}
	committed = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("atomicfile: syncing directory of %s: %w", path, err)
	}
	return nil
}
