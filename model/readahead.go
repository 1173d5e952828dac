package model

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/golora/golora/internal/pagecache"
)

// Prefetching and eviction of a streamed checkpoint (issue 8's 8B load).
// Read cold, a loader's own small reads each wait for the disk in turn, so
// that the disk idles while the CPUs convert and the CPUs idle while it
// reads: an 8B-shaped checkpoint (16 GB) that cat reads in 18 s took 31–51 s
// to load. readAhead keeps the kernel reading a window ahead of the loader,
// and, when the checkpoint does not fit in memory beside the weights,
// evicts what the loader has consumed.

// advisingFile is a tensorFile that can prefetch and evict its data: the
// safetensors and GGUF files from Open.
type advisingFile interface {
	tensorFile
	PrefetchData(data []byte)
	EvictData(data []byte)
}

// Read-ahead sizes: the kernel is asked to read readAheadChunk bytes at a
// time, while it is less than readAheadWindow ahead of what the loader has
// read. The window covers a few of the largest block linears (a Llama-3-8B
// MLP matrix is 117 MB in BF16), so the disk keeps streaming while a linear
// is quantized, and stays small beside the memory a checkpoint of that size
// needs.
const (
	readAheadChunk  = 8 << 20
	readAheadWindow = 512 << 20
)

// evictFraction decides whether a load evicts what it has read: when the
// checkpoint is larger than this fraction of the memory available at the
// start, it cannot stay in the page cache next to the weights it becomes,
// and leaving its pages to the kernel's reclaim makes the loader's own
// allocations stall. Smaller checkpoints stay cached for the next load.
const evictFraction = 0.5

// streamRange is one tensor's bytes, in the order the loader reads them.
type streamRange struct {
	file tensorFile
	data []byte
}

// rangeReader is what the loader reads its ranges through, in order: a
// readAhead, or a directReader for a checkpoint too large for the page cache.
type rangeReader interface {
	// file returns what the loader reads range i through.
	file(i int) tensorFile
	// close stops reading ahead and waits for the reader to finish.
	close()
}

// readAhead prefetches ranges in order on its own goroutine while the loader
// reads them through the tensorFiles that file returns.
type readAhead struct {
	ranges        []streamRange
	evict         bool
	chunk, window int64 // readAheadChunk and readAheadWindow

	mu       sync.Mutex
	moved    *sync.Cond // signalled when read grows or stop is set
	read     int64      // bytes the loader has read so far
	left     []int64    // per range, bytes not read yet
	stop     bool
	finished chan struct{}
}

// newRangeReader starts reading ranges ahead of the loader. When evict is
// set (the checkpoint is too large for the page cache, see shouldEvict), the
// ranges are read with O_DIRECT where the files allow it (directReader),
// else prefetched (readAhead) and each evicted from the page cache once the
// loader has read all of it. Call close when done (before closing the
// files); cancel ctx to abandon the ranges not read yet (see
// newDirectReader).
func newRangeReader(ctx context.Context, ranges []streamRange, evict bool) rangeReader {
	if evict {
		if d := newDirectReader(ctx, ranges); d != nil {
			return d
		}
	}
	return startReadAhead(&readAhead{ranges: ranges, evict: evict, chunk: readAheadChunk, window: readAheadWindow})
}

// rangeLoad is what a loader (Hugging Face or GGUF) reads its ranges
// through: a rangeReader, and with a quantizer the worker that quantizes the
// block linears. Either's failure abandons the reads, so that neither waits
// for ever on a chunk behind a range the other gave up.
type rangeLoad struct {
	ctx     context.Context // the load's, for finish
	reader  rangeReader
	sq      *streamQuantizer // nil without a quantizer
	abandon context.CancelFunc
}

// startRangeLoad starts reading ranges, the tensors in the order the loader
// reads them: with O_DIRECT (or, where the files do not allow it, through
// the page cache, evicting what was read) when their bytes are too large
// for the page cache (shouldEvict) or so.uncached, else through the page
// cache with read-ahead. Call finish when done.
func startRangeLoad(ctx context.Context, ranges []streamRange, so streamOptions) *rangeLoad {
	var size int64
	for _, rg := range ranges {
		size += int64(len(rg.data))
	}
	readCtx, abandon := context.WithCancel(ctx)
	l := &rangeLoad{ctx: ctx, abandon: abandon}
	l.reader = newRangeReader(readCtx, ranges, so.uncached || shouldEvict(size))
	if so.quantizer != nil {
		l.sq = newStreamQuantizer(ctx, so.quantizer, abandon)
	}
	return l
}

// file returns what the loader reads range i through.
func (l *rangeLoad) file(i int) tensorFile { return l.reader.file(i) }

// finish waits for the worker, abandoning the reads first when the loader
// failed (err), stops the reader and returns err or else the worker's first
// error. A read that failed only because the reads were abandoned
// (errLoadingStopped) gives way to the error that abandoned them: the
// worker's, or the load's context's.
func (l *rangeLoad) finish(err error) error {
	if l.sq != nil {
		if err != nil {
			l.abandon()
		}
		if werr := l.sq.wait(); werr != nil && (err == nil || errors.Is(err, errLoadingStopped)) {
			err = werr
		}
	}
	l.reader.close()
	l.abandon()
	if errors.Is(err, errLoadingStopped) && l.ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", err, context.Cause(l.ctx))
	}
	return err
}

// startReadAhead starts r, whose ranges, evict, chunk and window are set.
func startReadAhead(r *readAhead) *readAhead {
	r.left, r.finished = make([]int64, len(r.ranges)), make(chan struct{})
	r.moved = sync.NewCond(&r.mu)
	for i, rg := range r.ranges {
		r.left[i] = int64(len(rg.data))
	}
	go r.prefetch()
	return r
}

// shouldEvict reports whether a checkpoint of size bytes is too large for
// the page cache (see evictFraction).
func shouldEvict(size int64) bool {
	avail, ok := pagecache.Available()
	return ok && float64(size) > evictFraction*float64(avail)
}

func (r *readAhead) prefetch() {
	defer close(r.finished)
	var queued int64
	for _, rg := range r.ranges {
		af, ok := rg.file.(advisingFile)
		for off := int64(0); off < int64(len(rg.data)); off += r.chunk {
			chunk := rg.data[off:min(off+r.chunk, int64(len(rg.data)))]
			r.mu.Lock()
			for !r.stop && queued-r.read >= r.window {
				r.moved.Wait()
			}
			stop := r.stop
			r.mu.Unlock()
			if stop {
				return
			}
			if ok {
				af.PrefetchData(chunk)
			}
			queued += int64(len(chunk))
		}
	}
}

// file returns what the loader reads range i through: ranges[i].file, also
// counting what is read.
func (r *readAhead) file(i int) tensorFile { return rangeFile{r, i} }

// consumed records that n bytes of range i were read.
func (r *readAhead) consumed(i int, n int) {
	r.mu.Lock()
	r.read += int64(n)
	r.left[i] -= int64(n)
	done := r.left[i] == 0
	r.mu.Unlock()
	r.moved.Signal()
	if done && r.evict {
		if af, ok := r.ranges[i].file.(advisingFile); ok {
			af.EvictData(r.ranges[i].data)
		}
	}
}

// close stops prefetching and waits for the goroutine to return.
func (r *readAhead) close() {
	r.mu.Lock()
	r.stop = true
	r.mu.Unlock()
	r.moved.Broadcast()
	<-r.finished
}

// rangeFile reads one range of a readAhead.
type rangeFile struct {
	r *readAhead
	i int
}

func (f rangeFile) ReadData(dst, data []byte) error {
	if err := f.r.ranges[f.i].file.ReadData(dst, data); err != nil {
		return err
	}
	f.r.consumed(f.i, len(data))
	return nil
}
