//go:build !unix

package jobs

// lockDir cannot lock on this system: every process starts its own
// embedded server, so only one may use a directory at a time.
func lockDir(dir string) (unlock func(), err error) { return func() {}, nil }
