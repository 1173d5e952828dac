package half_test

import (
	"fmt"

	"github.com/golora/golora/internal/half"
)

func Example() {
	// 0.1 is not representable: F16 keeps 11 significant bits, BF16 8.
	f16, bf16 := half.Float32ToF16(0.1), half.Float32ToBF16(0.1)
	fmt.Printf("%#04x %v\n", f16, half.F16ToFloat32(f16))
	fmt.Printf("%#04x %v\n", bf16, half.BF16ToFloat32(bf16))
	// Output:
	// 0x2e66 0.099975586
	// 0x3dcd 0.100097656
}
