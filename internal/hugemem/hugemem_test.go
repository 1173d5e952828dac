package hugemem

import "testing"

// TestMake: slices of every size come back zeroed, of the asked length, and
// writable end to end (the advice must not change memory).
func TestMake(t *testing.T) {
	for _, n := range []int{0, 1, 1000, minBytes/4 - 1, minBytes / 4, 3*hugePage/4 + 17} {
		s := Make[float32](n)
		if len(s) != n {
			t.Fatalf("Make(%d): length %d", n, len(s))
		}
		for i, v := range s {
			if v != 0 {
				t.Fatalf("Make(%d)[%d] = %v, want 0", n, i, v)
			}
			s[i] = float32(i)
		}
		for i, v := range s {
			if v != float32(i) {
				t.Fatalf("Make(%d)[%d] = %v after writing %d", n, i, v, i)
			}
		}
	}
}
