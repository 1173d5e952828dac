package kernels

import (
	"math"
	"strings"
	"testing"
)

func TestRopeScalingCheck(t *testing.T) {
	for _, tc := range []struct {
		s    RopeScaling
		want string // "" for valid
	}{
		{RopeScaling{}, ""},
		{RopeScaling{Type: "default"}, ""},
		{RopeScaling{Type: "linear", Factor: 2}, ""},
		{RopeScaling{Type: "linear"}, "factor 0"},
		{RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 8192}, ""},
		{RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 4, HighFreqFactor: 1, OriginalMaxPos: 8192}, "increasing"},
		{RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4}, "original_max_position_embeddings 0"},
		{RopeScaling{Type: "longrope", AttentionFactor: 1.2, OriginalMaxPos: 4096}, ""},
		{RopeScaling{Type: "longrope", OriginalMaxPos: 4096}, "attention factor 0"},
		{RopeScaling{Type: "yarn", Factor: 4}, `type "yarn" is not supported`},
	} {
		err := tc.s.Check()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: err %v, want %q", tc.s, err, tc.want)
		}
	}
}

// TestScaledRopeInvFreqLinear: linear scaling divides every frequency.
func TestScaledRopeInvFreqLinear(t *testing.T) {
	base := RopeInvFreq(16, 10000)
	got := ScaledRopeInvFreq(16, 10000, RopeScaling{Type: "linear", Factor: 4})
	for i := range base {
		if math.Abs(got[i]-base[i]/4) > 1e-18 {
			t.Errorf("frequency %d: %v, want %v", i, got[i], base[i]/4)
		}
	}
}

// TestRopePartialPassesTail: with fewer angles than half a head, the tail
// of each head is copied unrotated and the rotated part pairs i with
// i + len(cos).
func TestRopePartialPassesTail(t *testing.T) {
	const headDim = 8
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	cos, sin := []float32{0, 0}, []float32{1, 1} // a quarter turn
	dst := make([]float32, len(x))
	Rope(dst, x, cos, sin, headDim, false)
	want := []float32{-3, -4, 1, 2, 5, 6, 7, 8, -11, -12, 9, 10, 13, 14, 15, 16}
	for i := range want {
		if dst[i] != want[i] {
			t.Fatalf("got %v, want %v", dst, want)
		}
	}
}

func TestAddBias(t *testing.T) {
	y := []float32{1, 2, 3, 4, 5, 6}
	AddBias(y, []float32{10, 20, 30})
	want := []float32{11, 22, 33, 14, 25, 36}
	for i := range want {
		if y[i] != want[i] {
			t.Fatalf("got %v, want %v", y, want)
		}
	}
}
