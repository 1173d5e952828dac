//go:build !unix

package hugemem

// Without mmap an arena is Go memory: Free only forgets it and the garbage
// collector reclaims it.
func mapMemory(size int) ([]byte, bool, error) { return make([]byte, size), true, nil }

func unmapMemory([]byte) error { return nil }
