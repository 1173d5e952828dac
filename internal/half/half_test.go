package half

import (
	"encoding/binary"
	"math"
	"testing"
)

// The expected bit patterns below were worked out by hand from the IEEE 754
// binary16 layout (1 sign, 5 exponent bits with bias 15, 10 mantissa bits) and
// the bfloat16 layout (the top 16 bits of a float32).

func pow2(e int) float32 { return float32(math.Ldexp(1, e)) }

func TestFloat32ToF16(t *testing.T) {
	tests := []struct {
		in   float32
		want uint16
		why  string
	}{
		{0, 0x0000, "zero"},
		{float32(math.Copysign(0, -1)), 0x8000, "negative zero keeps its sign"},
		{1, 0x3C00, "exponent 15, mantissa 0"},
		{-2, 0xC000, "sign, exponent 16"},
		{0.5, 0x3800, "exponent 14"},
		{0.1, 0x2E66, "exponent 11, mantissa round(0.6·1024) = 614"},
		{65504, 0x7BFF, "largest finite half"},
		{65519.996, 0x7BFF, "just below the midpoint to 65536 rounds down"},
		{65520, 0x7C00, "midpoint to 65536 ties to the even pattern, which is Inf"},
		{1e6, 0x7C00, "overflow to +Inf"},
		{-1e6, 0xFC00, "overflow to -Inf"},
		{float32(math.Inf(1)), 0x7C00, "+Inf"},
		{float32(math.Inf(-1)), 0xFC00, "-Inf"},
		{pow2(-14), 0x0400, "smallest normal"},
		{pow2(-24), 0x0001, "smallest subnormal"},
		{-pow2(-24), 0x8001, "negative smallest subnormal"},
		{pow2(-25), 0x0000, "half the smallest subnormal ties to even 0"},
		{1.5 * pow2(-25), 0x0001, "above the tie rounds up"},
		{3 * pow2(-25), 0x0002, "1.5 subnormal steps ties to even 2"},
		{1023.5 * pow2(-24), 0x0400, "tie between the largest subnormal and the smallest normal goes to the even normal"},
		{1 + pow2(-11), 0x3C00, "tie between 1 and 1+2⁻¹⁰ goes to even 1"},
		{1 + 3*pow2(-11), 0x3C02, "tie between 0x3C01 and 0x3C02 goes to even 0x3C02"},
		{1 + pow2(-11) + pow2(-20), 0x3C01, "just above a tie rounds up"},
		{math.Float32frombits(1), 0x0000, "float32 subnormal underflows to 0"},
		{-math.Float32frombits(1), 0x8000, "negative float32 subnormal underflows to -0"},
		{math.Float32frombits(0x7FC00000), 0x7E00, "quiet NaN"},
		{math.Float32frombits(0xFFC00000), 0xFE00, "negative quiet NaN"},
		{math.Float32frombits(0x7F800001), 0x7E00, "signalling NaN whose payload is cut off stays NaN"},
	}
	for _, tt := range tests {
		if got := Float32ToF16(tt.in); got != tt.want {
			t.Errorf("Float32ToF16(%g) = %#04x, want %#04x (%s)", tt.in, got, tt.want, tt.why)
		}
	}
}

func TestF16ToFloat32(t *testing.T) {
	tests := []struct {
		in   uint16
		want float32
	}{
		{0x3C00, 1},
		{0xC000, -2},
		{0x3555, 0.333251953125}, // 2⁻² · (1 + 341/1024)
		{0x0001, pow2(-24)},
		{0x03FF, 1023 * pow2(-24)},
		{0x0400, pow2(-14)},
		{0x7BFF, 65504},
		{0x7C00, float32(math.Inf(1))},
		{0xFC00, float32(math.Inf(-1))},
	}
	for _, tt := range tests {
		if got := F16ToFloat32(tt.in); got != tt.want {
			t.Errorf("F16ToFloat32(%#04x) = %g, want %g", tt.in, got, tt.want)
		}
	}
	if got := F16ToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("F16ToFloat32(0x8000) = %g, want -0", got)
	}
	if got := F16ToFloat32(0x7E00); !math.IsNaN(float64(got)) {
		t.Errorf("F16ToFloat32(0x7E00) = %g, want NaN", got)
	}
}

func TestFloat32ToBF16(t *testing.T) {
	tests := []struct {
		in   float32
		want uint16
		why  string
	}{
		{0, 0x0000, "zero"},
		{float32(math.Copysign(0, -1)), 0x8000, "negative zero"},
		{1, 0x3F80, "0x3F800000 truncated"},
		{-2, 0xC000, "0xC0000000 truncated"},
		{math.Pi, 0x4049, "0x40490FDB: low half 0x0FDB is below the midpoint"},
		{1 + pow2(-8), 0x3F80, "0x3F808000 is a tie; 0x3F80 is even"},
		{1 + 3*pow2(-8), 0x3F82, "0x3F818000 is a tie; 0x3F82 is even"},
		{1 + pow2(-8) + pow2(-20), 0x3F81, "just above a tie rounds up"},
		{math.MaxFloat32, 0x7F80, "0x7F7FFFFF rounds up past the largest bfloat16 to Inf"},
		{math.Float32frombits(0x7F7F7FFF), 0x7F7F, "just below the midpoint rounds down"},
		{float32(math.Inf(1)), 0x7F80, "+Inf"},
		{float32(math.Inf(-1)), 0xFF80, "-Inf"},
		{math.Float32frombits(0x00000001), 0x0000, "tiny subnormal rounds to 0"},
		{math.Float32frombits(0x00018000), 0x0002, "subnormal tie goes to even"},
		{math.Float32frombits(0x7FC00000), 0x7FC0, "quiet NaN"},
		{math.Float32frombits(0x7F800001), 0x7FC0, "signalling NaN whose payload is cut off stays NaN"},
		{math.Float32frombits(0xFFFFFFFF), 0xFFFF, "NaN with all payload bits must not round into the sign"},
	}
	for _, tt := range tests {
		if got := Float32ToBF16(tt.in); got != tt.want {
			t.Errorf("Float32ToBF16(%g) = %#04x, want %#04x (%s)", tt.in, got, tt.want, tt.why)
		}
	}
	if got := BF16ToFloat32(0x4049); got != 3.140625 {
		t.Errorf("BF16ToFloat32(0x4049) = %g, want 3.140625", got)
	}
	if got := BF16ToFloat32(0x0001); got != pow2(-133) {
		t.Errorf("BF16ToFloat32(0x0001) = %g, want 2⁻¹³³", got)
	}
}

// checkNearest checks an encoder against its (simpler) decoder over every
// pair of adjacent non-negative finite values: each value encodes to itself,
// the midpoint between neighbours ties to the even pattern, and the float32
// values just either side of the midpoint go to the nearer neighbour. top is
// the value the pattern after the largest finite one would have if the
// exponent range went on; the midpoint towards it must round to Inf.
func checkNearest(t *testing.T, name string, encode func(float32) uint16, decode func(uint16) float32, maxFinite uint16, top float64) {
	t.Helper()
	failures := 0
	check := func(x float32, want uint16) {
		for _, sign := range []float32{1, -1} {
			w := want
			if sign < 0 {
				w |= 0x8000
			}
			if got := encode(sign * x); got != w && failures < 10 {
				failures++
				t.Errorf("%s(%g) = %#04x, want %#04x", name, sign*x, got, w)
			}
		}
	}
	for h := uint16(0); h <= maxFinite; h++ {
		a := float64(decode(h))
		b := top
		if h < maxFinite {
			b = float64(decode(h + 1))
		}
		mid := float32((a + b) / 2) // exact: neighbours differ in one more bit than the format has
		if float64(mid) != (a+b)/2 {
			t.Fatalf("midpoint of %#04x and its successor is not exact in float32", h)
		}
		even := h
		if h&1 == 1 {
			even = h + 1
		}
		check(float32(a), h)
		check(mid, even)
		check(math.Nextafter32(mid, 0), h)
		check(math.Nextafter32(mid, float32(math.Inf(1))), h+1)
	}
}

func TestF16NearestExhaustive(t *testing.T) {
	checkNearest(t, "Float32ToF16", Float32ToF16, F16ToFloat32, 0x7BFF, 65536)
}

func TestBF16NearestExhaustive(t *testing.T) {
	checkNearest(t, "Float32ToBF16", Float32ToBF16, BF16ToFloat32, 0x7F7F, math.Ldexp(1, 128))
}

// Every half and bfloat16 pattern survives a trip through float32; NaNs stay
// NaN.
func TestHalfRoundTripExhaustive(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		f := F16ToFloat32(h)
		if math.IsNaN(float64(f)) {
			if g := Float32ToF16(f); g&0x7C00 != 0x7C00 || g&0x03FF == 0 {
				t.Errorf("F16 NaN %#04x came back as %#04x", h, g)
			}
		} else if g := Float32ToF16(f); g != h {
			t.Errorf("F16 %#04x -> %g -> %#04x", h, f, g)
		}
		b := BF16ToFloat32(h)
		if math.IsNaN(float64(b)) {
			if g := Float32ToBF16(b); g&0x7F80 != 0x7F80 || g&0x007F == 0 {
				t.Errorf("BF16 NaN %#04x came back as %#04x", h, g)
			}
		} else if g := Float32ToBF16(b); g != h {
			t.Errorf("BF16 %#04x -> %g -> %#04x", h, b, g)
		}
	}
}

// BenchmarkDecodeBF16 reports the decoding speed in GB/s of BF16 input
// (reference: decoding with BF16ToFloat32 element by element, in the same run).
func BenchmarkDecodeBF16(b *testing.B) {
	src := make([]byte, 2<<20)
	for i := range src {
		src[i] = byte(i * 7)
	}
	dst := make([]float32, len(src)/2)
	b.Run("DecodeBF16", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			DecodeBF16(dst, src)
		}
	})
	b.Run("elementwise", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			for i := range dst {
				dst[i] = BF16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
			}
		}
	})
}
