//go:build !linux

package hugemem

func advise([]byte) {}

func populate(addr, n uintptr) {}

// discard does nothing here: what MADV_DONTNEED does to private memory is
// not the same on every system (on some the pages keep their contents), so
// the pages stay, and are cleared when handed out again.
func discard([]byte) bool { return false }
