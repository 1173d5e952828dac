package quant

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestValidateBlockSize(t *testing.T) {
	for _, bs := range []int{32, 64, 128, 256, 512, 1024, 2048, 4096} {
		if err := ValidateBlockSize(bs); err != nil {
			t.Errorf("ValidateBlockSize(%d) = %v, want nil", bs, err)
		}
	}
	for _, bs := range []int{-64, 0, 1, 16, 31, 33, 48, 96, 4095, 8192} {
		err := ValidateBlockSize(bs)
		if !errors.Is(err, ErrBlockSize) {
			t.Errorf("ValidateBlockSize(%d) = %v, want ErrBlockSize", bs, err)
		}
	}
}

func TestNumBlocks(t *testing.T) {
	for _, c := range []struct{ n, bs, want int }{
		{0, 32, 0}, {1, 32, 1}, {32, 32, 1}, {33, 32, 2}, {4096, 64, 64}, {4097, 64, 65},
	} {
		if got := NumBlocks(c.n, c.bs); got != c.want {
			t.Errorf("NumBlocks(%d, %d) = %d, want %d", c.n, c.bs, got, c.want)
		}
	}
}

func TestBlockAbsmax(t *testing.T) {
	// 70 elements in blocks of 32: [0, 32), [32, 64) and the partial [64, 70).
	// Block 0 peaks at x[5] = −3, block 1 at x[40] = 2.5, block 2 is all zero
	// but for x[69] = −0.25; worked out from the assignments below.
	x := make([]float32, 70)
	x[0], x[5], x[31] = 1, -3, 2.75
	x[32], x[40] = -2, 2.5
	x[69] = -0.25
	dst := []float32{9, 9, 9, 9} // one spare entry must stay untouched
	if err := BlockAbsmax(dst, x, 32); err != nil {
		t.Fatal(err)
	}
	want := []float32{3, 2.5, 0.25, 9}
	for i := range want {
		if dst[i] != want[i] {
			t.Errorf("dst[%d] = %v, want %v", i, dst[i], want[i])
		}
	}

	if err := BlockAbsmax(make([]float32, 1), make([]float32, 64), 32); err == nil {
		t.Error("short destination: got nil error")
	}
	if err := BlockAbsmax(make([]float32, 4), x, 48); !errors.Is(err, ErrBlockSize) {
		t.Errorf("block size 48: got %v, want ErrBlockSize", err)
	}
	// An all-zero block has absmax 0.
	z := []float32{1}
	if err := BlockAbsmax(z, make([]float32, 32), 32); err != nil || z[0] != 0 {
		t.Errorf("zero block: absmax %v, err %v; want 0, nil", z[0], err)
	}
}

func TestBlockAbsmaxNonFinite(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		x := make([]float32, 100)
		x[70] = bad // block 2 of size 32 covers elements 64..95
		err := BlockAbsmax(make([]float32, 4), x, 32)
		if !errors.Is(err, ErrNonFinite) {
			t.Fatalf("%v: got %v, want ErrNonFinite", bad, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "block 2") || !strings.Contains(msg, "element 70") {
			t.Errorf("%v: error %q does not name block 2 and element 70", bad, msg)
		}
	}
}
