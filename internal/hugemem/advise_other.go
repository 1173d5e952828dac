//go:build !linux

package hugemem

func advise([]byte) {}

func populate(addr, n uintptr) {}
