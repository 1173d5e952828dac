package hugemem

import (
	"sync"
	"testing"
)

// TestPopulate: populating a slice, whole or in unaligned parts, while
// another goroutine writes it, leaves every value as written.
func TestPopulate(t *testing.T) {
	s := Make[uint32](3*hugePage/4 + 1001)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range s {
			s[i] = uint32(i) * 2654435761
		}
	})
	Populate(s[17 : len(s)-5])
	Populate(s[:0])
	Populate([]byte{})
	wg.Wait()
	Populate(s)
	for i, v := range s {
		if v != uint32(i)*2654435761 {
			t.Fatalf("s[%d] = %d after Populate, want %d", i, v, uint32(i)*2654435761)
		}
	}
}
