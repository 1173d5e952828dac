package parallel

import (
	"runtime"
	"slices"
	"sync"
	"testing"
)

// chunks runs For and returns the chunks it made, in order.
func chunks(n, minChunk, align int) [][2]int {
	var mu sync.Mutex
	var got [][2]int
	For(n, minChunk, align, func(lo, hi int) {
		mu.Lock()
		got = append(got, [2]int{lo, hi})
		mu.Unlock()
	})
	slices.SortFunc(got, func(a, b [2]int) int { return a[0] - b[0] })
	return got
}

func TestForCoversTheRange(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	cases := []struct {
		n, minChunk, align int
		want               [][2]int
	}{
		{0, 1, 1, [][2]int{{0, 0}}},
		{10, 1, 1, [][2]int{{0, 2}, {2, 5}, {5, 7}, {7, 10}}},
		// At least 4 per chunk: 10/4 = 2 chunks.
		{10, 4, 1, [][2]int{{0, 5}, {5, 10}}},
		// Boundaries on multiples of 64; the last chunk is partial.
		{200, 1, 64, [][2]int{{0, 64}, {64, 128}, {128, 192}, {192, 200}}},
		{300, 1, 64, [][2]int{{0, 64}, {64, 128}, {128, 192}, {192, 300}}},
		// Below minChunk: one call.
		{100, 1000, 1, [][2]int{{0, 100}}},
	}
	for _, c := range cases {
		if got := chunks(c.n, c.minChunk, c.align); !slices.Equal(got, c.want) {
			t.Errorf("For(%d, %d, %d) made chunks %v, want %v", c.n, c.minChunk, c.align, got, c.want)
		}
	}
}

func TestForSmallLoopsDoNotAllocate(t *testing.T) {
	sum := 0
	fn := func(lo, hi int) { sum += hi - lo }
	if a := testing.AllocsPerRun(10, func() { For(100, 1000, 1, fn) }); a != 0 {
		t.Errorf("a loop below minChunk allocates %v times", a)
	}
}

// TestPiecesCoversTheRange: every piece is handed out exactly once, whatever
// the number of CPUs.
func TestPiecesCoversTheRange(t *testing.T) {
	for _, procs := range []int{1, 2, 5} {
		prev := runtime.GOMAXPROCS(procs)
		for _, c := range [][2]int{{0, 4}, {1, 4}, {10, 3}, {12, 3}, {1000, 7}, {5, 100}} {
			n, piece := c[0], c[1]
			var mu sync.Mutex
			var got [][2]int
			Pieces(n, piece, func(lo, hi int) {
				mu.Lock()
				got = append(got, [2]int{lo, hi})
				mu.Unlock()
			})
			slices.SortFunc(got, func(a, b [2]int) int { return a[0] - b[0] })
			var want [][2]int
			for lo := 0; lo < n; lo += piece {
				want = append(want, [2]int{lo, min(n, lo+piece)})
			}
			if !slices.Equal(got, want) {
				t.Errorf("GOMAXPROCS %d: Pieces(%d, %d) made %v, want %v", procs, n, piece, got, want)
			}
		}
		runtime.GOMAXPROCS(prev)
	}
}
