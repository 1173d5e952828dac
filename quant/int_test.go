package quant

import (
	"math"
	"testing"
)

func TestInt4Levels(t *testing.T) {
	// Levels are −1 + 2k/15; times 15 they are the odd integers −15…15, and
	// float32(level)·15 rounds back to them exactly.
	got := Int4Levels()
	for k, l := range got {
		if want := float32(2*k - 15); l*15 != want {
			t.Errorf("level %d ·15 = %v, want %v", k, l*15, want)
		}
	}
	if got[0] != -1 || got[15] != 1 {
		t.Errorf("end levels %v, %v; want −1, 1", got[0], got[15])
	}
}

func TestInt4RoundTrip(t *testing.T) {
	// One block of 32 over 2 rows of 16 with absmax 15, so level k stands for
	// 2k−15 and x sits at t = x/2 + 7.5 on the level grid; the nearest level
	// is k = ⌈t − ½⌉ (exact halves go down). Worked out per element:
	w := []float32{
		// 15→t15→15; −15→t0→−15; 0→t7.5 tie→−1; 2→t8.5 tie→1; −2→t6.5 tie→−3;
		// 2.1→t8.55→3; 0.9→t7.95→1; −0.9→t7.05→−1; 10→t12.5 tie→9;
		// 14.2→t14.6→15; −14.2→t0.4→−15; 6→t10.5 tie→5; −6→t4.5 tie→−7;
		// 7.9→t11.45→7; −13→t1→−13; 4.4→t9.7→5.
		15, -15, 0, 2, -2, 2.1, 0.9, -0.9, 10, 14.2, -14.2, 6, -6, 7.9, -13, 4.4,
		// Odd integers are levels; 12, 8, −8 are ties → 11, 7, −9;
		// 12.1→t13.55→13; −12.1→t1.45→−13; 0.1→t7.55→1; −0.1→t7.45→−1;
		// 13.9→t14.45→13.
		1, -1, 3, -3, 5, -5, 11, -11, 12, 12.1, -12.1, 0.1, -0.1, 8, -8, 13.9,
	}
	want := []float32{
		15, -15, -1, 1, -3, 3, 1, -1, 9, 15, -15, 5, -7, 7, -13, 5,
		1, -1, 3, -3, 5, -5, 11, -11, 11, 13, -13, 1, -1, 7, -9, 13,
	}
	// Codes of the first three pairs: (15, −15) → 15, 0; (0, 2) → 7, 8;
	// (−2, 2.1) → 6, 9.
	wantBytes := []byte{0xf0, 0x78, 0x69}

	m, err := QuantizeInt4(w, 2, 16, 32)
	if err != nil {
		t.Fatal(err)
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
		if got[i] != want[i] {
			t.Errorf("element %d (w=%v): got %v, want %v", i, w[i], got[i], want[i])
		}
	}
	if m.Format() != "int4" {
		t.Errorf("Format() = %q", m.Format())
	}
}

func TestInt8RoundTrip(t *testing.T) {
	// Block 0 has absmax 127, so q = round(x) and the scale 127/127 = 1:
	// 0.5→1 and −0.5→−1 (halves away from zero), 1.49→1, 2.5→3, −2.5→−3,
	// 63.7→64, −0.4→0, 100.2→100.
	// Block 1 has absmax 63.5, so q = round(2x) and the scale is 0.5:
	// 63.5→127→63.5; 1→2→1; 0.25→0.5→1→0.5; −0.75→−1.5→−2→−1; 10.1→20.2→20→10.
	w := make([]float32, 64)
	copy(w, []float32{127, -127, 0.5, -0.5, 1.49, 2.5, -2.5, 63.7, -0.4, 100.2})
	copy(w[32:], []float32{63.5, 1, 0.25, -0.75, 10.1})
	wantCodes := map[int]int8{0: 127, 1: -127, 2: 1, 3: -1, 4: 1, 5: 3, 6: -3, 7: 64, 8: 0, 9: 100,
		32: 127, 33: 2, 34: 1, 35: -2, 36: 20}
	wantVals := map[int]float32{0: 127, 1: -127, 2: 1, 3: -1, 4: 1, 5: 3, 6: -3, 7: 64, 8: 0, 9: 100,
		32: 63.5, 33: 1, 34: 0.5, 35: -1, 36: 10}

	m, err := QuantizeInt8(w, 4, 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, len(w))
	if err := m.DequantizeRows(got, 0, 4); err != nil {
		t.Fatal(err)
	}
	for i := range w {
		wc, wv := wantCodes[i], wantVals[i] // zero for the untouched elements
		if m.codes[i] != wc {
			t.Errorf("code %d (w=%v) = %d, want %d", i, w[i], m.codes[i], wc)
		}
		if got[i] != wv {
			t.Errorf("element %d (w=%v) = %v, want %v", i, w[i], got[i], wv)
		}
	}
	if m.Format() != "int8" {
		t.Errorf("Format() = %q", m.Format())
	}
}

func TestZeroBlock(t *testing.T) {
	// A block of zeros has absmax 0 and must dequantize to +0, not NaN.
	w := make([]float32, 64)
	w[40] = 127 // only the second block is non-zero; ±absmax is exact in every format
	for _, m := range quantizeAll(t, w, 2, 32, 32) {
		got := make([]float32, 64)
		if err := m.DequantizeRows(got, 0, 2); err != nil {
			t.Fatal(err)
		}
		for i, v := range got[:32] {
			if v != 0 || math.Signbit(float64(v)) {
				t.Errorf("%s: element %d = %v, want +0", m.Format(), i, v)
			}
		}
		if got[40] != 127 {
			t.Errorf("%s: element 40 = %v, want 127", m.Format(), got[40])
		}
	}
}
