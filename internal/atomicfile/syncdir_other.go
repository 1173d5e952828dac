//go:build !unix

package atomicfile

// syncDir does nothing where directories cannot be opened and synced (Windows
// makes renames durable through the file system itself).
func syncDir(dir string) error { return nil }
