//go:build !amd64

package kernels

import "github.com/golora/golora/internal/cpu"

// vectorLevel is Generic: there is no assembly for this architecture.
func vectorLevel() cpu.Level { return cpu.Generic }
