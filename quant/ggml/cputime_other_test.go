//go:build !unix

package ggml

import "time"

// cpuTime reports that process CPU time is not measured on this platform.
func cpuTime() (time.Duration, bool) { return 0, false }
