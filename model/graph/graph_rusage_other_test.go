//go:build !unix

package graph

import "time"

// graphCPUTime reports that the process's CPU time is not known here.
func graphCPUTime() (time.Duration, bool) { return 0, false }
