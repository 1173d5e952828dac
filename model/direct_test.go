package model

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/golora/golora/internal/parallel"
	"github.com/golora/golora/internal/safetensors"
	"github.com/golora/golora/nf4"
	"github.com/golora/golora/quant"
)

// memDirectFile is a directFile whose "mapping" is the file's content in
// memory.
type memDirectFile struct {
	path    string
	content []byte
}

func (m memDirectFile) Path() string { return m.path }

func (m memDirectFile) Stat() (os.FileInfo, error) { return os.Stat(m.path) }

func (m memDirectFile) FileOffset(data []byte) (int64, bool) {
	off := int64(uintptr(unsafe.Pointer(unsafe.SliceData(data))) - uintptr(unsafe.Pointer(unsafe.SliceData(m.content))))
	return off, off >= 0 && off+int64(len(data)) <= int64(len(m.content))
}

func (m memDirectFile) ReadData(dst, data []byte) error {
	copy(dst, data)
	return nil
}

// writeDirectFile writes content to a file called name in a temporary
// directory and returns it as a memDirectFile.
func writeDirectFile(t *testing.T, name string, content []byte) memDirectFile {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return memDirectFile{path, content}
}

// TestDirectReader reads ranges of two files — empty, shorter than a
// block, unaligned, crossing chunk boundaries, ending at the end of the
// file — through a directReader with a ring smaller than what is read,
// piece by piece on every CPU (every other piece viewed in the ring, when
// it lies in one chunk), with two ranges read at once as the loader and the
// quantizing worker do, and compares with the files' bytes; with one, two
// and three chunks read at once.
func TestDirectReader(t *testing.T) {
	for _, reads := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("reads=%d", reads), func(t *testing.T) { testDirectReader(t, reads) })
	}
}

func testDirectReader(t *testing.T, reads int) {
	rng := rand.New(rand.NewPCG(1, 2))
	var files []memDirectFile
	for i, n := range []int{100_000, 23_456} {
		content := make([]byte, n)
		for j := range content {
			content[j] = byte(rng.Uint32())
		}
		files = append(files, writeDirectFile(t, "f"+string(rune('0'+i)), content))
	}
	a, b := files[0].content, files[1].content
	ranges := []streamRange{
		{files[0], a[:0]}, {files[0], a[1:100]}, {files[1], b[5000:23_456]}, {files[0], a[100:4196]},
		{files[0], a[4196:60_001]}, {files[1], b[17:4000]}, {files[0], a[60_001:]},
	}
	const chunk = 10_000
	d := newDirectReaderSized(context.Background(), ranges, chunk, 3, reads)
	if d == nil {
		t.Skip("O_DIRECT is not supported on the test's temporary directory")
	}
	defer d.close()
	read := func(i int) []byte {
		got := make([]byte, len(ranges[i].data))
		parallel.Pieces(len(got), 3000, func(lo, hi int) {
			if lo/3000%2 == 1 {
				// Every other piece is viewed in the ring where it lies in
				// one chunk, as decodeStreaming does.
				viewed, err := d.viewData(i, ranges[i].data[lo:hi], func(src []byte) { copy(got[lo:hi], src) })
				if err != nil {
					t.Error(err)
					return
				}
				if oneChunk := lo/chunk == (hi-1)/chunk; viewed != oneChunk {
					t.Errorf("range %d [%d, %d): viewed %v, want %v", i, lo, hi, viewed, oneChunk)
				}
				if viewed {
					return
				}
			}
			dst := make([]byte, hi-lo+100) // longer than the part, as the loader's buffers are
			if err := d.readData(i, dst, ranges[i].data[lo:hi]); err != nil {
				t.Error(err)
				return
			}
			copy(got[lo:hi], dst)
		})
		return got
	}
	for i := 0; i < len(ranges); i++ {
		if i == 4 {
			// The worker reads range 4 while the loader reads range 5.
			done := make(chan []byte)
			go func() { done <- read(5) }()
			got4 := read(4)
			got5 := <-done
			if !bytes.Equal(got4, ranges[4].data) || !bytes.Equal(got5, ranges[5].data) {
				t.Fatal("ranges 4 and 5 read concurrently differ from the file")
			}
			i++
			continue
		}
		if got := read(i); !bytes.Equal(got, ranges[i].data) {
			t.Fatalf("range %d differs from the file", i)
		}
	}
}

// TestDirectReaderTruncatedLater: a range before the end of a truncated
// file reads whole, though the reader failed on a later one's chunk ahead
// of the loader; the later one then fails.
func TestDirectReaderTruncatedLater(t *testing.T) {
	content := make([]byte, 50_000)
	for i := range content {
		content[i] = byte(i * 7)
	}
	f := writeDirectFile(t, "short", content)
	if err := os.Truncate(f.path, 30_000); err != nil {
		t.Fatal(err)
	}
	d := newDirectReaderSized(context.Background(), []streamRange{{f, content[:20_000]}, {f, content[20_000:]}}, 4096, 16, 16)
	if d == nil {
		t.Skip("O_DIRECT is not supported on the test's temporary directory")
	}
	defer d.close()
	time.Sleep(10 * time.Millisecond) // the reads, one a chunk at once, all end first
	dst := make([]byte, len(content))
	if err := d.readData(0, dst, content[:20_000]); err != nil {
		t.Fatalf("range 0, before the end of the file: %v", err)
	}
	if !bytes.Equal(dst[:20_000], content[:20_000]) {
		t.Fatal("range 0 differs from the file")
	}
	if err := d.readData(1, dst, content[20_000:]); err == nil {
		t.Error("range 1, past the end of the file, read without an error")
	}
}

// TestDirectReaderTruncated: a file that ends before a range does fails
// the read with an error naming the file, and close returns.
func TestDirectReaderTruncated(t *testing.T) {
	content := make([]byte, 50_000)
	f := writeDirectFile(t, "short", content)
	d := newDirectReaderSized(context.Background(), []streamRange{{f, content[100:]}}, 8192, 2, 2)
	if d == nil {
		t.Skip("O_DIRECT is not supported on the test's temporary directory")
	}
	defer d.close()
	if err := os.Truncate(f.path, 20_000); err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, len(content))
	err := d.readData(0, dst, content[100:])
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(f.path)) {
		t.Errorf("err %v, want one naming %s", err, f.path)
	}
}

// TestLoadUncachedMatches: a BF16 Hugging Face checkpoint in two shards
// loads with NF4 linears to the same weights read with O_DIRECT (as a
// checkpoint too large for the page cache is) as through the page cache.
func TestLoadUncachedMatches(t *testing.T) {
	cfg := Config{Dim: 128, HiddenDim: 384, Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 32, VocabSize: 1000,
		MaxSeqLen: 64, NormEps: 1e-5, RopeTheta: 10000}
	dir := t.TempDir()
	if err := WriteHF(dir, hfRandomWeights(cfg, 5, nil), safetensors.BF16); err != nil {
		t.Fatal(err)
	}
	hfShard(t, dir)
	q := nf4.Quantizer(nf4.Options{})
	ctx := context.Background()
	cached, err := loadHFStream(ctx, dir, streamOptions{quantizer: q})
	if err != nil {
		t.Fatal(err)
	}
	src, err := openHFWeights(dir)
	if err != nil {
		t.Fatal(err)
	}
	ranges := []streamRange{}
	for _, f := range src.files {
		for _, name := range f.Names() {
			tensor, _ := f.Tensor(name)
			ranges = append(ranges, streamRange{f, tensor.Data})
		}
	}
	d := newDirectReader(context.Background(), ranges)
	src.close()
	if d == nil {
		t.Skip("O_DIRECT is not supported on the test's temporary directory")
	}
	d.close()
	uncached, err := loadHFStream(ctx, dir, streamOptions{quantizer: q, uncached: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cached, uncached) {
		t.Error("weights read with O_DIRECT differ from those read through the page cache")
	}
	// Dense tensors read last, into memory populated ahead, as a real
	// model's embedding is.
	prefaulted, err := loadHFStream(ctx, dir, streamOptions{quantizer: q, uncached: true, prefaultMin: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cached, prefaulted) {
		t.Error("weights read with O_DIRECT into memory populated ahead differ from those read through the page cache")
	}
}

// TestDirectReaderCancel: a range the loader abandons half read holds the
// ring, so a read of a later range waits; cancelling the context makes it
// return an error instead of waiting for ever.
func TestDirectReaderCancel(t *testing.T) {
	content := make([]byte, 200_000)
	f := writeDirectFile(t, "f", content)
	ctx, cancel := context.WithCancel(context.Background())
	d := newDirectReaderSized(ctx, []streamRange{{f, content[:100_000]}, {f, content[100_000:]}}, 8192, 2, 2)
	if d == nil {
		t.Skip("O_DIRECT is not supported on the test's temporary directory")
	}
	defer d.close()
	dst := make([]byte, 100_000)
	if err := d.readData(0, dst, content[:5000]); err != nil { // then abandoned
		t.Fatal(err)
	}
	errc := make(chan error)
	go func() { errc <- d.readData(1, dst, content[100_000:101_000]) }()
	select {
	case err := <-errc:
		t.Fatalf("a read past the abandoned range returned (%v) before the cancel", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("no error after the cancel")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read still waits after the cancel")
	}
}

// TestRangeLoadWorkerError: when the quantizing worker fails, the reads are
// abandoned, so the loader's next read of a chunk not read yet fails too;
// finish returns the worker's error, which says what went wrong, not the
// loader's "loading stopped".
func TestRangeLoadWorkerError(t *testing.T) {
	content := make([]byte, 12*4096)
	for i := range content {
		content[i] = byte(i * 5)
	}
	f := writeDirectFile(t, "worker", content)
	ranges := []streamRange{{f, content[:4096]}, {f, content[4096:]}}
	readCtx, abandon := context.WithCancel(context.Background())
	d := newDirectReaderSized(readCtx, ranges, 4096, 2, 1)
	if d == nil {
		abandon()
		t.Skip("O_DIRECT is not supported on the test's temporary directory")
	}
	boom := errors.New("boom")
	failed := make(chan struct{})
	l := &rangeLoad{ctx: context.Background(), reader: d, abandon: abandon, sq: newStreamQuantizer(context.Background(), func([]float32, int, int) (quant.Matrix, error) {
		defer close(failed)
		return nil, boom
	}, abandon)}
	lin := &Linear{Name: "lin", Out: 1, In: 1}
	err := l.sq.add(quantizeJob{lin: lin, where: "range 0", fill: func(dst []float32) (bool, error) {
		buf := make([]byte, 4096)
		return true, l.file(0).ReadData(buf, content[:4096])
	}})
	if err != nil {
		t.Fatal(err)
	}
	<-failed
	<-d.done // the worker's failure stops the reader
	// The loader goes on with range 1, most of whose chunks were not read
	// before the worker failed.
	err = l.file(1).ReadData(make([]byte, len(content)), content[4096:])
	if err == nil {
		t.Fatal("range 1 read whole after the worker failed")
	}
	if err := l.finish(err); !errors.Is(err, boom) {
		t.Errorf("finish returned %v, want the worker's error", err)
	}
}

// TestRangeLoadCancelled: a load cancelled while the loader waits for a
// chunk fails with an error that wraps the context's.
func TestRangeLoadCancelled(t *testing.T) {
	content := make([]byte, 12*4096)
	f := writeDirectFile(t, "cancel", content)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readCtx, abandon := context.WithCancel(ctx)
	d := newDirectReaderSized(readCtx, []streamRange{{f, content}}, 4096, 2, 1)
	if d == nil {
		abandon()
		t.Skip("O_DIRECT is not supported on the test's temporary directory")
	}
	l := &rangeLoad{ctx: ctx, reader: d, abandon: abandon}
	cancel()
	<-d.done // the reader stops at the chunks it had room for
	err := l.file(0).ReadData(make([]byte, len(content)), content)
	if err == nil {
		t.Fatal("the range read whole after the load was cancelled")
	}
	if err := l.finish(err); !errors.Is(err, context.Canceled) {
		t.Errorf("finish returned %v, want an error wrapping context.Canceled", err)
	}
}
