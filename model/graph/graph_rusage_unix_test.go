//go:build unix

package graph

import (
	"syscall"
	"time"
)

// graphCPUTime returns the CPU time (user and system) the process has used,
// and whether it is known.
func graphCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
