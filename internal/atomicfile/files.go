package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// File is one file of a set that WriteFiles replaces together.
type File struct {
	Name  string                  // base name in the directory
	Write func(w io.Writer) error // produces the contents
}

// Names of the entries WriteFiles keeps in its directory for a set: the
// link ".SET" to the current version directory ".SET.v-XXXX". CleanStale
// recognizes them.
const versionInfix = ".v-"

// crashPoint, when set by a test, is called at each step of WriteFiles and
// WriteDir after which a crash leaves a distinct state on disk; an error
// stops the write there, as a crash would (nothing is cleaned up).
var crashPoint func(step string) error

func reached(step string) error {
	if crashPoint != nil {
		return crashPoint(step)
	}
	return nil
}

// WriteFiles replaces the files of a set in dir (created if needed)
// together: a reader opening them by name sees either every old file or
// every new one, at every instant and after a crash at any moment.
//
// Each name in dir is a symbolic link to ".SET/NAME", and ".SET" is a link
// to ".SET.v-XXXX", a directory holding one complete version. A new version
// is written and synced into a fresh directory; one rename then replaces
// the ".SET" link, and the old version is removed. A name that is still a
// regular file (written before the set had links) is turned into a link
// after the switch, the one moment its files change one by one. If a write
// fails, dir is as it was. On Windows, where links need privileges, the
// files are renamed into place one after another instead.
func WriteFiles(dir, set string, files []File, perm fs.FileMode) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if runtime.GOOS == "windows" {
		return renameInOrder(dir, files, perm)
	}
	ver, err := os.MkdirTemp(dir, "."+set+versionInfix+"*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	verName := filepath.Base(ver)
	if err := writeVersion(ver, files, perm); err != nil {
		os.RemoveAll(ver)
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("atomicfile: syncing %s: %w", dir, err)
	}
	if err := reached("version written"); err != nil {
		return err
	}
	setLink := "." + set
	// Names not there yet are linked before the switch: until it, their
	// links lead nowhere, so a first write shows no file or every file.
	if err := linkNames(dir, setLink, files, false); err != nil {
		os.RemoveAll(ver)
		return err
	}
	old, _ := os.Readlink(filepath.Join(dir, setLink))
	if err := replaceLink(dir, setLink, verName); err != nil {
		os.RemoveAll(ver)
		return err
	}
	if err := reached("switched"); err != nil {
		return err
	}
	if err := linkNames(dir, setLink, files, true); err != nil {
		return err
	}
	if old != "" && old != verName && strings.HasPrefix(old, setLink+versionInfix) && !strings.Contains(old, "/") {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			return fmt.Errorf("atomicfile: removing the previous version: %w", err)
		}
	}
	return syncDir(dir)
}

// linkNames makes each file's name in dir a link into the set's current
// version: only the names that do not exist yet, or also those that are
// something else (replace).
func linkNames(dir, setLink string, files []File, replace bool) error {
	for _, f := range files {
		target := setLink + "/" + f.Name
		cur, err := os.Readlink(filepath.Join(dir, f.Name))
		if err == nil && cur == target {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, f.Name)); err == nil && !replace {
			continue
		}
		if err := replaceLink(dir, f.Name, target); err != nil {
			return err
		}
		if err := reached("linked " + f.Name); err != nil {
			return err
		}
	}
	return nil
}

// writeVersion writes every file into the fresh directory ver.
func writeVersion(ver string, files []File, perm fs.FileMode) error {
	if err := os.Chmod(ver, 0o755); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	for _, f := range files {
		if f.Name == "" || strings.ContainsAny(f.Name, `/\`) || f.Name[0] == '.' {
			return fmt.Errorf("atomicfile: file name %q: want a plain name not starting with a dot", f.Name)
		}
		if err := WriteFile(filepath.Join(ver, f.Name), f.Write, perm); err != nil {
			return err
		}
	}
	return nil
}

// replaceLink atomically makes dir/name a symbolic link to target.
func replaceLink(dir, name, target string) error {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	os.Remove(tmpName)
	if err := os.Symlink(target, tmpName); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err := os.Rename(tmpName, filepath.Join(dir, name)); err != nil {
		os.Remove(tmpName)
		return fmt.Errorf("atomicfile: renaming link %s into place: %w", name, err)
	}
	return syncDir(dir)
}

// renameInOrder writes every file under a temporary name and only then
// renames them into place, in order.
func renameInOrder(dir string, files []File, perm fs.FileMode) error {
	temps := make([]string, 0, len(files))
	defer func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}()
	for _, f := range files {
		tmp, err := os.CreateTemp(dir, "."+f.Name+".pending-*")
		if err != nil {
			return fmt.Errorf("atomicfile: %w", err)
		}
		tmp.Close()
		temps = append(temps, tmp.Name())
		if err := WriteFile(tmp.Name(), f.Write, perm); err != nil {
			return err
		}
	}
	for i, f := range files {
		if err := os.Rename(temps[i], filepath.Join(dir, f.Name)); err != nil {
			return fmt.Errorf("atomicfile: renaming %s into place: %w", f.Name, err)
		}
	}
	temps = nil
	return syncDir(dir)
}

// WriteDir creates the directory path, filled by fill, so that it is
// either complete or absent: fill writes into a fresh sibling directory,
// whose files are then synced, and one rename puts it in place. path must
// not exist or be an empty directory. If fill or any step fails, the
// sibling is removed.
func WriteDir(path string, fill func(dir string) error) error {
	path = filepath.Clean(path)
	if entries, err := os.ReadDir(path); err == nil && len(entries) > 0 {
		return fmt.Errorf("atomicfile: %s exists and is not empty", path)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("atomicfile: %w", err)
	}
	parent, base := filepath.Split(path)
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".pending-*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err := fill(tmp); err != nil {
		return err
	}
	if err := syncTree(tmp); err != nil {
		return fmt.Errorf("atomicfile: syncing %s: %w", tmp, err)
	}
	if err := reached("filled"); err != nil {
		done = true // a crash leaves the sibling for CleanStale
		return err
	}
	// An empty directory in the way is replaced (rmdir fails, and nothing
	// is lost, if a file appeared in it meanwhile).
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("atomicfile: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("atomicfile: renaming %s into place: %w", path, err)
	}
	done = true
	return syncDir(parent)
}

// syncTree syncs every regular file and directory under root.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		if d.IsDir() {
			return syncDir(p)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// CleanStale removes what interrupted writes left in dir: temporary files
// and directories (".NAME.tmp-*", ".NAME.pending-*") and version
// directories of WriteFiles (".SET.v-*") that the ".SET" link does not
// point to. It returns the names removed. Only the directory's single
// writer may call it: another writer's work in progress looks stale too.
func CleanStale(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("atomicfile: %w", err)
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if !staleName(dir, name) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return removed, fmt.Errorf("atomicfile: %w", err)
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// staleName reports whether the entry name of dir is left over from an
// interrupted write.
func staleName(dir, name string) bool {
	if !strings.HasPrefix(name, ".") {
		return false
	}
	if strings.Contains(name, ".tmp-") || strings.Contains(name, ".pending-") {
		return true
	}
	set, _, ok := strings.Cut(name, versionInfix)
	if !ok {
		return false
	}
	cur, err := os.Readlink(filepath.Join(dir, set))
	return err != nil || cur != name
}
