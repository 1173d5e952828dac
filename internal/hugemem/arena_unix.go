//go:build unix

package hugemem

import "golang.org/x/sys/unix"

func mapMemory(size int) ([]byte, bool, error) {
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	return mem, false, err
}

func unmapMemory(mem []byte) error { return unix.Munmap(mem) }
