package cpu_test

import (
	"fmt"

	"github.com/golora/golora/internal/cpu"
)

func Example() {
	// Kernels pick their code path from Best; pure Go is always available.
	l := cpu.Best()
	fmt.Println(l >= cpu.Generic)
	// Output: true
}
