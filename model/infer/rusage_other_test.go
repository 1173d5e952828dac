//go:build !unix

package infer

import "time"

// cpuTime is not measured here; the tokens/cpu-s metric is then +Inf.
func cpuTime() time.Duration { return 0 }
