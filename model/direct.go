package model

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"github.com/golora/golora/internal/gguf"
	"github.com/golora/golora/internal/hugemem"
	"github.com/golora/golora/internal/safetensors"
)

// Direct reading of a checkpoint too large for the page cache. On the VM
// golora is measured on, reading a cold file through the page cache costs
// 0.5–1 CPU-second of system time per GB (cat of the 16 GB 8B-shaped
// checkpoint: 7.3–18.5 s; dd of a 3.5 GB shard: 3.7 s of system time,
// 14.9 s), while O_DIRECT reads into a reused buffer cost under 0.1 (dd of
// the checkpoint: 1.3 s; of the shard 0.27 s, 4.2 s); and a loader that
// reads through the page cache must then evict the file or leave the kernel
// to reclaim it. directReader reads the ranges in order, directReads chunks
// at a time, with O_DIRECT into a small ring of buffers a few chunks ahead
// of the loader, and the loader's reads copy from there (or convert in
// place, viewData).

// directFile is a tensorFile that can say where its data lie in which file:
// the safetensors and GGUF files from Open.
type directFile interface {
	Path() string
	// Stat describes the file the data lie in, which Path may no longer
	// name.
	Stat() (os.FileInfo, error)
	FileOffset(data []byte) (int64, bool)
}

// The files from Open are directFiles: were one not, its loads would read
// through the page cache without a word (newDirectReader returns nil).
var (
	_ directFile = (*gguf.File)(nil)
	_ directFile = (*safetensors.File)(nil)
)

// Direct reading sizes: chunks of directChunk bytes, directSlots of them
// in memory at once (read or being read ahead of the loader), directReads
// of them being read at once. One read at a time leaves the disk idle
// between a read's end and the next one's start, which on a loaded
// machine is a wait for a CPU (the reader's thread must be scheduled again
// to issue it); with two in flight the disk always has the next one queued.
// On the VM golora is measured on, dd with bs=32M read the cold 16 GB
// 8B-shaped checkpoint in 13.7–21.9 s as one stream and in 10.7–13.7 s as
// two (each shard's halves at once); three or four streams were no faster
// than two within the noise.
const (
	directChunk = 32 << 20
	directSlots = 8
	directReads = 2
	directAlign = 4096 // O_DIRECT's alignment of offsets, lengths and buffers
)

// directPiece is one chunk of a range.
type directPiece struct {
	rng     int   // index of the range
	off     int64 // offset within the range's data
	n       int64
	file    *os.File
	fileOff int64 // offset of the chunk's first byte in file
}

// directReader reads ranges with O_DIRECT ahead of the loader.
type directReader struct {
	chunk  int64 // directChunk
	ranges []streamRange
	pieces []directPiece
	first  []int // per range, the index of its first piece
	slots  [][]byte
	files  []*os.File

	mu      sync.Mutex
	changed *sync.Cond
	data    [][]byte // per piece read: its bytes in its slot (nil until read)
	left    []int64  // per piece, bytes the loader has not read yet
	// err is the error of the first piece that failed, errAt: the pieces
	// before it are still read, so that the error reaches the loader at the
	// range whose bytes are missing rather than at one that was read ahead
	// of it.
	err   error
	errAt int
	stop  bool
	done  chan struct{} // closed once every reading goroutine has returned
	// unwatch stops watching the context newDirectReader was given.
	unwatch func() bool
}

// newDirectReader opens the files of ranges with O_DIRECT and starts
// reading, directReads chunks at a time. It returns nil when a file cannot be read that way (a file from
// Parse, a file system without O_DIRECT): the caller reads through the page
// cache instead. The loader must read every range whole, in order (two at
// once at most, as the loader and its quantizing worker do), or cancel ctx:
// the reader refills a buffer only once its chunk was read, and cancelling
// ctx makes every wait for a chunk return an error.
func newDirectReader(ctx context.Context, ranges []streamRange) *directReader {
	return newDirectReaderSized(ctx, ranges, directChunk, directSlots, directReads)
}

// newDirectReaderSized is newDirectReader with chunks of chunk bytes,
// slots of them in memory and reads of them in flight at once.
func newDirectReaderSized(ctx context.Context, ranges []streamRange, chunk int64, slots, reads int) *directReader {
	d := &directReader{chunk: chunk, ranges: ranges, first: make([]int, len(ranges)), done: make(chan struct{})}
	opened := map[string]*os.File{}
	for i, rg := range ranges {
		d.first[i] = len(d.pieces)
		df, ok := rg.file.(directFile)
		if !ok {
			d.closeFiles()
			return nil
		}
		if len(rg.data) == 0 {
			continue
		}
		base, ok := df.FileOffset(rg.data)
		if !ok {
			d.closeFiles()
			return nil
		}
		f := opened[df.Path()]
		if f == nil {
			var err error
			if f, err = openDirect(df.Path()); err != nil {
				d.closeFiles()
				return nil
			}
			// The path names another file than the one parsed when one
			// was renamed over it since: its bytes at the parsed offsets
			// are not the tensors'.
			if !sameFile(f, df) {
				f.Close()
				d.closeFiles()
				return nil
			}
			opened[df.Path()] = f
			d.files = append(d.files, f)
		}
		for off := int64(0); off < int64(len(rg.data)); off += chunk {
			n := min(chunk, int64(len(rg.data))-off)
			d.pieces = append(d.pieces, directPiece{rng: i, off: off, n: n, file: f, fileOff: base + off})
		}
	}
	d.changed = sync.NewCond(&d.mu)
	d.data = make([][]byte, len(d.pieces))
	d.left = make([]int64, len(d.pieces))
	for i, p := range d.pieces {
		d.left[i] = p.n
	}
	d.slots = make([][]byte, min(slots, len(d.pieces)))
	for i := range d.slots {
		d.slots[i] = alignedBuffer(int(chunk) + 2*directAlign)
	}
	d.unwatch = context.AfterFunc(ctx, d.abort)
	reads = max(1, min(reads, len(d.slots)))
	var wg sync.WaitGroup
	for first := range reads {
		wg.Go(func() { d.read(first, reads) })
	}
	go func() {
		wg.Wait()
		close(d.done)
	}()
	return d
}

// abort stops reading and wakes every wait.
func (d *directReader) abort() {
	d.mu.Lock()
	d.stop = true
	d.mu.Unlock()
	d.changed.Broadcast()
}

// alignedBuffer returns n bytes starting at a multiple of directAlign, in
// huge pages when n is large (hugemem.Make): a chunk is then 16 page faults
// rather than 8192.
func alignedBuffer(n int) []byte {
	b := hugemem.Make[byte](n + directAlign)
	skip := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b))) & (directAlign - 1))
	return b[skip : skip+n]
}

// sameFile reports whether f, opened by df's path, is the file df was read
// from.
func sameFile(f *os.File, df directFile) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := df.Stat()
	return err == nil && os.SameFile(a, b)
}

func (d *directReader) closeFiles() {
	for _, f := range d.files {
		f.Close()
	}
}

// read reads pieces first, first+step, … in order, each into the slot it
// shares with the piece len(d.slots) before it, once the loader has read
// all of that one. step goroutines share the pieces this way, so that step
// reads are in flight at once.
func (d *directReader) read(first, step int) {
	for i := first; i < len(d.pieces); i += step {
		p := d.pieces[i]
		slot := d.slots[i%len(d.slots)]
		d.mu.Lock()
		for !d.stop && !d.failedBefore(i) && i >= len(d.slots) && d.left[i-len(d.slots)] > 0 {
			d.changed.Wait()
		}
		stop := d.stop || d.failedBefore(i)
		d.mu.Unlock()
		if stop {
			return
		}
		data, err := readDirect(p.file, p.fileOff, p.n, slot)
		d.mu.Lock()
		if err != nil && (d.err == nil || i < d.errAt) {
			d.err, d.errAt = fmt.Errorf("model: reading %s at offset %d: %w", p.file.Name(), p.fileOff, err), i
		}
		d.data[i] = data
		d.mu.Unlock()
		d.changed.Broadcast()
		if err != nil {
			return
		}
	}
}

// failedBefore reports whether a piece before piece i failed. d.mu is held.
func (d *directReader) failedBefore(i int) bool { return d.err != nil && d.errAt < i }

// readDirect reads n bytes at off of f into buf, from the aligned block
// containing off, and returns them.
func readDirect(f *os.File, off, n int64, buf []byte) ([]byte, error) {
	start := off &^ (directAlign - 1)
	end := (off + n + directAlign - 1) &^ (directAlign - 1)
	want := off + n - start
	got := int64(0)
	for got < want {
		m, err := preadDirect(f, buf[got:end-start], start+got)
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return nil, fmt.Errorf("file ends %d bytes short", want-got)
		}
		got += int64(m)
	}
	return buf[off-start : off-start+n], nil
}

// readData copies part, a part of range i's data, into dst, waiting for the
// pieces it spans to be read.
func (d *directReader) readData(i int, dst, part []byte) error {
	rg := d.ranges[i].data
	off := int64(uintptr(unsafe.Pointer(unsafe.SliceData(part))) - uintptr(unsafe.Pointer(unsafe.SliceData(rg))))
	for k := d.first[i] + int(off/d.chunk); len(part) > 0; k++ {
		src, err := d.await(k)
		if err != nil {
			return err
		}
		c := copy(dst[:len(part)], src[off-d.pieces[k].off:])
		dst, part, off = dst[c:], part[c:], off+int64(c)
		d.release(k, c)
	}
	return nil
}

// viewData calls use with part, a part of range i's data, in the ring
// itself, without a copy, when it lies in one chunk (decodeStreaming's
// pieces of floats always do: they divide a chunk; a few of its pieces of
// ggml rows straddle two); it reports false, having done nothing, when it
// does not. The chunk's slot is not refilled until use
// returns.
func (d *directReader) viewData(i int, part []byte, use func(src []byte)) (bool, error) {
	rg := d.ranges[i].data
	off := int64(uintptr(unsafe.Pointer(unsafe.SliceData(part))) - uintptr(unsafe.Pointer(unsafe.SliceData(rg))))
	if len(part) == 0 || off/d.chunk != (off+int64(len(part))-1)/d.chunk {
		return false, nil
	}
	k := d.first[i] + int(off/d.chunk)
	src, err := d.await(k)
	if err != nil {
		return true, err
	}
	at := off - d.pieces[k].off
	use(src[at : at+int64(len(part))])
	d.release(k, len(part))
	return true, nil
}

// await waits for piece k to be read and returns its data.
func (d *directReader) await(k int) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.data[k] == nil && !d.failedBefore(k+1) && !d.stop {
		d.changed.Wait()
	}
	if d.data[k] != nil {
		return d.data[k], nil
	}
	if d.failedBefore(k + 1) {
		return nil, d.err
	}
	return nil, fmt.Errorf("model: reading %s: %w", d.pieces[k].file.Name(), errLoadingStopped)
}

// errLoadingStopped is the error of a read that waited for a chunk the
// reader stopped before reading: the load was cancelled, or the loader or
// its worker failed and abandoned the reads (rangeLoad.finish reports
// their error instead).
var errLoadingStopped = errors.New("loading stopped")

// release records that n more bytes of piece k have been used: once all
// have, its slot can be refilled.
func (d *directReader) release(k, n int) {
	d.mu.Lock()
	d.left[k] -= int64(n)
	free := d.left[k] == 0
	d.mu.Unlock()
	if free {
		d.changed.Broadcast()
	}
}

// file returns what the loader reads range i through.
func (d *directReader) file(i int) tensorFile { return directRange{d, i} }

// directRange reads one range of a directReader.
type directRange struct {
	d *directReader
	i int
}

func (f directRange) ReadData(dst, data []byte) error { return f.d.readData(f.i, dst, data) }

func (f directRange) ViewData(data []byte, use func(src []byte)) (bool, error) {
	return f.d.viewData(f.i, data, use)
}

// close stops reading, waits for the reader and closes the files.
func (d *directReader) close() {
	d.unwatch()
	d.abort()
	<-d.done
	d.closeFiles()
}
