package quant

import (
	"math"
	"testing"
)

func TestFP4Codebook(t *testing.T) {
	// bitsandbytes' FP4 code list (formats.md), divided by 12: index = sign·8 +
	// exponent·2 + mantissa bit, exponent bias 3, exponent 0 subnormal.
	list := [16]float64{0, 0.0625, 8, 12, 4, 6, 2, 3, 0, -0.0625, -8, -12, -4, -6, -2, -3}
	got := FP4Codebook()
	for i, v := range list {
		if want := float32(v / 12); got[i] != want {
			t.Errorf("code %d = %v, want %v", i, got[i], want)
		}
	}
	if !math.Signbit(float64(got[8])) {
		t.Errorf("code 8 = %v, want −0", got[8])
	}
	// E2M1 decoding rule, independent of the list: 2^(bias+1−e)·(1+m/2) for
	// e > 0 and 0.0625·m for e = 0 (bitsandbytes' test_4bit_quant).
	for i := range 8 {
		e, m := i>>1, i&1
		v := 0.0625 * float64(m)
		if e > 0 {
			v = math.Pow(2, float64(3+1-e)) * (1 + 0.5*float64(m))
		}
		if want := float32(v / 12); got[i] != want {
			t.Errorf("E2M1 code %d = %v, want %v", i, got[i], want)
		}
	}
}

func TestFP4Thresholds(t *testing.T) {
	// bitsandbytes' dQuantizeFP4 pivots (formats.md) with the codes on either
	// side: a value equal to a pivot takes the lower magnitude.
	cases := []struct {
		pivot       float32
		below, over uint8
	}{
		{0.00260417, 0b0000, 0b0001},
		{0.0859375, 0b0001, 0b0110},
		{0.20833333, 0b0110, 0b0111},
		{0.29166667, 0b0111, 0b0100},
		{0.4166667, 0b0100, 0b0101},
		{0.583333, 0b0101, 0b0010},
		{0.8333333, 0b0010, 0b0011},
	}
	for _, c := range cases {
		up := math.Nextafter32(c.pivot, 1)
		if got := fp4Code(c.pivot); got != c.below {
			t.Errorf("fp4Code(%v) = %04b, want %04b", c.pivot, got, c.below)
		}
		if got := fp4Code(up); got != c.over {
			t.Errorf("fp4Code(%v) = %04b, want %04b", up, got, c.over)
		}
		if got := fp4Code(-c.pivot); got != c.below|8 {
			t.Errorf("fp4Code(%v) = %04b, want %04b", -c.pivot, got, c.below|8)
		}
		if got := fp4Code(-up); got != c.over|8 {
			t.Errorf("fp4Code(%v) = %04b, want %04b", -up, got, c.over|8)
		}
	}
	for _, c := range []struct {
		v    float32
		want uint8
	}{
		{0, 0}, {float32(math.Copysign(0, -1)), 0}, {1, 0b0011}, {-1, 0b1011}, {-0.001, 0b1000},
	} {
		if got := fp4Code(c.v); got != c.want {
			t.Errorf("fp4Code(%v) = %04b, want %04b", c.v, got, c.want)
		}
	}
}

func TestFP4RoundTrip(t *testing.T) {
	// One block of 32 spread over 2 rows of 16. absmax = 12, so x·(1/12) is
	// each value in units of the FP4 codes (…/12) and the codes come out as
	// follows (magnitude codes: 0→0, 1→0.0625, 6→2, 7→3, 4→4, 5→6, 2→8, 3→12):
	w := []float32{
		12, -12, 8, -8, 6, -6, 4, -4, 3, -3, 2, -2, 0.0625, -0.0625, 0, -0.01,
		// 10.5/12 = 0.875 > 0.8333 → 12; 9/12 = 0.75 → 8; 7.2/12 = 0.6 → 8;
		// 5.5/12 = 0.458 → 6; 3.6/12 = 0.3 → 4; 3.4/12 = 0.283 → 3;
		// 2.6/12 = 0.217 → 3; 2.4/12 = 0.2 → 2; 1.1/12 = 0.0917 → 2;
		// 1/12 = 0.0833 ≤ 0.0859 → 0.0625; 0.04/12 = 0.0033 → 0.0625;
		// 0.03/12 = 0.0025 ≤ 0.0026 → 0; −7.2 → −8; −1 → −0.0625;
		// −0.5/12 = −0.0417 → −0.0625; −3.4 → −3.
		10.5, 9, 7.2, 5.5, 3.6, 3.4, 2.6, 2.4, 1.1, 1, 0.04, 0.03, -7.2, -1, -0.5, -3.4,
	}
	// code·12 is exact in float32 for every code here (float32(c/12)·12
	// rounds back to c), so the dequantized values are exact.
	negZero := float32(math.Copysign(0, -1))
	want := []float32{
		12, -12, 8, -8, 6, -6, 4, -4, 3, -3, 2, -2, 0.0625, -0.0625, 0, negZero,
		12, 8, 8, 6, 4, 3, 3, 2, 2, 0.0625, 0.0625, 0, -8, -0.0625, -0.0625, -3,
	}
	// Codes of the first eight pairs, high nibble first: 12,−12 → 3,11 …
	// 0,−0.01 → 0,8 (−0.01/12 is too small for the subnormal: −0).
	wantBytes := []byte{0x3b, 0x2a, 0x5d, 0x4c, 0x7f, 0x6e, 0x19, 0x08}

	m, err := QuantizeFP4(w, 2, 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	if m.absmax[0] != 12 {
		t.Errorf("absmax = %v, want 12", m.absmax[0])
	}
	for i, b := range wantBytes {
		if m.packed[i] != b {
			t.Errorf("packed[%d] = %#02x, want %#02x", i, m.packed[i], b)
		}
	}
	got := make([]float32, len(w))
	if err := m.DequantizeRows(got, 0, 2); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] || math.Signbit(float64(got[i])) != math.Signbit(float64(want[i])) {
			t.Errorf("element %d (w=%v): got %v, want %v", i, w[i], got[i], want[i])
		}
	}
	if m.Format() != "fp4" {
		t.Errorf("Format() = %q", m.Format())
	}
}

func TestFP4Midpoints(t *testing.T) {
	// Exact midpoints between codes, block absmax 12. The pivots are rounded
	// float32 constants and x is scaled by the rounded reciprocal, so a true
	// midpoint can land on either side; worked out in float32:
	//   7·float32(1/12) = 0.5833334 > float32(0.583333) = 0.583333 → 8/12
	//   5·float32(1/12) = 0.4166667 = float32(0.4166667) (not above) → 4/12
	w := make([]float32, 32)
	w[0], w[1], w[2] = 12, 7, 5
	m, err := QuantizeFP4(w, 1, 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 32)
	if err := m.DequantizeRows(got, 0, 1); err != nil {
		t.Fatal(err)
	}
	if got[1] != 8 || got[2] != 4 {
		t.Errorf("midpoints 7 and 5 dequantized to %v and %v, want 8 and 4", got[1], got[2])
	}
}
