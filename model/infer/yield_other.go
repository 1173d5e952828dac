//go:build !linux

package infer

// osYield does nothing where sched_yield is not at hand: a held team's
// helper still yields its goroutine, and parks after heldSpin.
func osYield() {}
