package model

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// adviceLog is an advisingFile over memory that records the advice it gets.
type adviceLog struct {
	ra *readAhead // to see how much was read when a prefetch comes

	mu       sync.Mutex
	ahead    []int64 // per prefetch: bytes queued before it minus bytes read
	queued   int64
	prefetch [][]byte
	evicted  [][]byte
}

func (a *adviceLog) ReadData(dst, data []byte) error {
	copy(dst, data)
	return nil
}

func (a *adviceLog) PrefetchData(data []byte) {
	a.ra.mu.Lock()
	read := a.ra.read
	a.ra.mu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ahead = append(a.ahead, a.queued-read)
	a.queued += int64(len(data))
	a.prefetch = append(a.prefetch, data)
}

func (a *adviceLog) EvictData(data []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evicted = append(a.evicted, data)
}

// TestReadAhead: the prefetcher asks for the ranges in order, chunk by
// chunk, never a window or more ahead of what was read (and stops there
// while nothing is read); with evict, each range is evicted once, whole,
// after its last byte was read, and never without; what the loader reads
// through file is the data; close stops the prefetcher.
func TestReadAhead(t *testing.T) {
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, evict := range []bool{false, true} {
		log := &adviceLog{}
		ranges := []streamRange{{log, data[:300]}, {log, data[300:301]}, {log, data[301:650]}, {log, data[650:]}}
		r := &readAhead{ranges: ranges, evict: evict, chunk: 64, window: 200}
		log.ra = r
		startReadAhead(r)
		queued := func() int64 {
			log.mu.Lock()
			defer log.mu.Unlock()
			return log.queued
		}
		for deadline := time.Now().Add(10 * time.Second); queued() < 256 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)    // time to go past the window, if it would
		if early := queued(); early != 256 { // chunks are asked for while less than the window is queued
			t.Errorf("evict %v: with nothing read, %d bytes prefetched, want 256 (4 chunks, the window being 200)", evict, early)
		}
		var got []byte
		for i, rg := range ranges {
			f := r.file(i)
			for lo := 0; lo < len(rg.data); lo += 50 {
				part := rg.data[lo:min(lo+50, len(rg.data))]
				dst := make([]byte, len(part))
				if err := f.ReadData(dst, part); err != nil {
					t.Fatal(err)
				}
				got = append(got, dst...)
			}
		}
		for queued() != int64(len(data)) { // the prefetcher finishes the last range
			time.Sleep(time.Millisecond)
		}
		r.close()
		if !bytes.Equal(got, data) {
			t.Errorf("evict %v: read data differs", evict)
		}
		next := data
		for i, p := range log.prefetch {
			if len(p) > 64 || &p[0] != &next[0] {
				t.Fatalf("evict %v: prefetch %d is not the next chunk of at most 64 bytes", evict, i)
			}
			next = next[len(p):]
			if log.ahead[i] >= 200 {
				t.Errorf("evict %v: prefetch %d came %d bytes ahead of the reads, window 200", evict, i, log.ahead[i])
			}
		}
		if !evict && len(log.evicted) != 0 {
			t.Errorf("evicted %d ranges without evict", len(log.evicted))
		}
		if evict {
			if len(log.evicted) != len(ranges) {
				t.Fatalf("evicted %d ranges, want %d", len(log.evicted), len(ranges))
			}
			for i, e := range log.evicted {
				if &e[0] != &ranges[i].data[0] || len(e) != len(ranges[i].data) {
					t.Errorf("eviction %d is not range %d whole", i, i)
				}
			}
		}
	}
}

// TestReadAheadCloseStops: close returns while the prefetcher waits for
// reads that never come.
func TestReadAheadCloseStops(t *testing.T) {
	log := &adviceLog{}
	r := &readAhead{ranges: []streamRange{{log, make([]byte, 1<<20)}}, chunk: 64, window: 128}
	log.ra = r
	startReadAhead(r)
	done := make(chan struct{})
	go func() {
		r.close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return")
	}
}
