package model

import (
	"sync"
	"sync/atomic"

	"github.com/golora/golora/internal/hugemem"
)

// Most of a quantizing load's CPU time is the kernel handing it fresh
// memory: zeroing it and, on a VM whose host reclaims free guest memory
// (virtio-balloon free page reporting, as on the machine golora is measured
// on), the host backing it again — 1.4–4 CPU-seconds per GB (2.0–2.6 with
// huge pages on a busy day, whether written or populated; 0.05–0.1 for
// pages another process freed a moment before, which the host has not
// taken back yet; the page cache pays 1.2–1.7 for a cold file's pages, so
// reading through it does not get cheaper memory). The largest
// tensors kept in float32 (the embedding, an untied output head: 4.2 GB of
// an 8B model's 7.8) take most of it, and a loader that meets them first
// leaves the disk idle while it waits for their pages. So the loaders
// (Hugging Face and GGUF) allocate them up front, a goroutine populates
// them (hugemem.Populate) while the block linears stream in, and the loader
// reads them last, into memory that is ready.

// prefaultMin is the element count from which a tensor kept in float32 is
// allocated ahead and populated in the background (64 MiB of float32): the
// embedding and the output head of any real model, not its norms.
const prefaultMin = 16 << 20

// populateChunk is how much hugemem.Populate asks for at a time, so that
// stopping waits for at most one chunk.
const populateChunk = 32 << 20

// prefaultDense moves the slots that size (elements kept in float32, 0 for
// the others) says have at least least elements to the end of slots,
// keeping the order of both parts, and allocates their float32 values:
// dense[i] is for slot len(slots)-len(dense)+i of the slots returned.
func prefaultDense[S any](slots []S, least int, size func(S) int) (reordered []S, dense [][]float32) {
	var small, large []S
	for _, s := range slots {
		if n := size(s); n > 0 && n >= least {
			large = append(large, s)
			dense = append(dense, hugemem.Make[float32](n))
		} else {
			small = append(small, s)
		}
	}
	return append(small, large...), dense
}

// populateAll populates bufs in order on a new goroutine; stop ends it,
// after the chunk it is at, and waits for it.
func populateAll(bufs [][]float32) (stop func()) {
	if len(bufs) == 0 {
		return func() {}
	}
	var (
		stopped atomic.Bool
		wg      sync.WaitGroup
	)
	wg.Go(func() {
		for _, b := range bufs {
			for lo := 0; lo < len(b); lo += populateChunk / 4 {
				if stopped.Load() {
					return
				}
				hugemem.Populate(b[lo:min(lo+populateChunk/4, len(b))])
			}
		}
	})
	return func() {
		stopped.Store(true)
		wg.Wait()
	}
}
