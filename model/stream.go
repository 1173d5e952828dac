package model

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/internal/hugemem"
	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/internal/parallel"
	"github.com/golora/golora/quant"
)

// Loaders stream a checkpoint: each tensor is converted (and, with a
// Quantizer, quantized) right after it is read, piece by piece through small
// buffers with pread (tensorFile.ReadData) rather than through the file
// mapping, so loading never holds the whole file nor a float32 copy of the
// whole model, and takes no page fault per page of the file.

// tensorFile is the checkpoint file a tensor's bytes come from (a
// safetensors or GGUF File): ReadData copies a range of a tensor's bytes
// into a buffer.
type tensorFile interface {
	ReadData(dst, data []byte) error
}

// viewingFile is a tensorFile that may hold a range of a tensor's bytes in
// memory already (the O_DIRECT ring, directReader): ViewData calls use with
// them there, saving ReadData's copy, or reports false, having done
// nothing, when it cannot.
type viewingFile interface {
	ViewData(data []byte, use func(src []byte)) (bool, error)
}

// floatDecoder converts little-endian floating-point data of one storage
// type to float32, unit by unit: an element, or a row of a ggml block type.
type floatDecoder struct {
	size   int // bytes per unit
	elems  int // values per unit; 0 means 1
	decode func(dst []float32, src []byte)
	// decodeFinite, if not nil, is decode that also reports whether every
	// value is finite, checking them as it decodes.
	decodeFinite func(dst []float32, src []byte) bool
	// decodeChecked, if not nil, replaces decode for data that may be
	// malformed (a ggml block with a non-finite scale); first is the index
	// of src's first unit, for the error.
	decodeChecked func(dst []float32, src []byte, first int) error
}

// units returns how many units of dec n values are; false when n is not a
// whole number of them.
func (dec floatDecoder) units(n int) (int, bool) {
	elems := max(dec.elems, 1)
	return n / elems, n%elems == 0
}

var (
	decodeF32 = floatDecoder{size: 4, decode: func(dst []float32, src []byte) {
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	}}
	decodeF16  = floatDecoder{size: 2, decode: half.DecodeF16}
	decodeBF16 = floatDecoder{size: 2, decode: half.DecodeBF16, decodeFinite: half.DecodeBF16Finite}
	decodeF64  = floatDecoder{size: 8, decode: func(dst []float32, src []byte) {
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
		}
	}}
)

// streamPiece is how many elements decodeStreaming reads and converts at a
// time on one goroutine: the piece's bytes and its float32 values stay in
// the core's L2 cache between the read, the conversion and the finiteness
// check.
const streamPiece = 1 << 16

// pieceBuffers holds the read buffers of decodeStreaming, streamPiece
// elements of the widest type (float64) each.
var pieceBuffers = sync.Pool{New: func() any {
	b := make([]byte, 8*streamPiece)
	return &b
}}

// decodeStreaming converts src, a tensor's bytes in file, into dst
// (len(dst) values, a whole number of dec's units), piece by piece on every
// CPU. It reports whether every value was finite (checked while each piece
// is in cache, or known from dec.decodeChecked's success).
func decodeStreaming(dst []float32, src []byte, dec floatDecoder, file tensorFile) (finite bool, err error) {
	var mu sync.Mutex
	var nonFinite atomic.Bool
	vf, viewing := file.(viewingFile)
	elems := max(dec.elems, 1)
	units, _ := dec.units(len(dst))
	parallel.Pieces(units, max(streamPiece/elems, 1), func(lo, hi int) {
		out := dst[lo*elems : hi*elems]
		var derr error
		convert := func(b []byte) {
			var finite bool
			switch {
			case dec.decodeChecked != nil:
				// A ggml block decoded without error is finite: its
				// scales are checked, and a finite f16 scale times the
				// block's small integers stays far inside float32.
				derr = dec.decodeChecked(out, b, lo)
				finite = derr == nil
			case dec.decodeFinite != nil:
				finite = dec.decodeFinite(out, b)
			default:
				dec.decode(out, b)
				finite = allFinite(out)
			}
			if !finite {
				nonFinite.Store(true)
			}
		}
		part := src[lo*dec.size : hi*dec.size]
		done, rerr := false, error(nil)
		if viewing {
			done, rerr = vf.ViewData(part, convert)
		}
		if !done {
			bp := pieceBuffers.Get().(*[]byte)
			defer pieceBuffers.Put(bp)
			buf := *bp
			if len(buf) < len(part) { // a ggml row wider than a piece
				buf = make([]byte, len(part))
			}
			if rerr = file.ReadData(buf, part); rerr == nil {
				convert(buf[:len(part)])
			}
		}
		rerr = cmp.Or(rerr, derr)
		if rerr != nil {
			mu.Lock()
			err = cmp.Or(err, rerr)
			mu.Unlock()
		}
	})
	return !nonFinite.Load(), err
}

// quantizeJob is one linear to fill with float32 values and quantize.
type quantizeJob struct {
	lin   *Linear
	where string // file (and tensor) for error messages
	// fill writes the linear's lin.Out·lin.In float32 values into dst; it
	// may report that they are all finite, which saves a pass over them.
	fill func(dst []float32) (finite bool, err error)
}

// streamQuantizer quantizes linears on a worker goroutine while the loader
// goes on reading the next tensors. The worker reuses one float32 buffer, so
// the float32 form of the model never exists: only one linear at a time, and
// no garbage for the collector to let pile up. One worker is enough: its
// decoding and the quantizers (nf4 splits large matrices across the CPUs)
// each use every CPU already, and BenchmarkLoadNF4 measured two workers
// 1.6x slower than one (they thrash each other's caches).
type streamQuantizer struct {
	ctx  context.Context
	q    quant.Quantizer
	jobs chan quantizeJob
	wg   sync.WaitGroup

	mu  sync.Mutex
	err error
	// onFail, if set, is called once, on the first error.
	onFail func()
}

// newStreamQuantizer starts the worker; call wait to collect it. onFail,
// if not nil, is called on the worker's first error.
func newStreamQuantizer(ctx context.Context, q quant.Quantizer, onFail func()) *streamQuantizer {
	s := &streamQuantizer{ctx: ctx, q: q, jobs: make(chan quantizeJob), onFail: onFail}
	jobs := s.jobs
	s.wg.Go(func() { s.work(jobs) })
	return s
}

func (s *streamQuantizer) work(jobs <-chan quantizeJob) {
	var buf []float32
	for job := range jobs {
		if s.failed() {
			continue
		}
		if err := s.ctx.Err(); err != nil {
			s.fail(fmt.Errorf("model: loading: %w", err))
			continue
		}
		n := job.lin.Out * job.lin.In
		if cap(buf) < n {
			buf = hugemem.Make[float32](n)
		}
		if err := s.run(job, buf[:n]); err != nil {
			s.fail(err)
		}
	}
}

func (s *streamQuantizer) run(job quantizeJob, w []float32) error {
	finite, err := job.fill(w)
	if err != nil {
		return err
	}
	lin := job.lin
	if !finite {
		if i := firstNonFiniteParallel(w); i >= 0 {
			return fmt.Errorf("model: %s: tensor %s.weight element %d is %v: the weights hold non-finite values", job.where, lin.Name, i, w[i])
		}
	}
	m, err := s.q(w, lin.Out, lin.In)
	if err != nil {
		return fmt.Errorf("model: %s: quantizing %s: %w", job.where, lin.Name, err)
	}
	if m == nil {
		return fmt.Errorf("model: %s: quantizing %s: quantizer returned no matrix", job.where, lin.Name)
	}
	if r, c := m.Dims(); r != lin.Out || c != lin.In {
		return fmt.Errorf("model: %s: quantizing %s: quantizer returned a [%d %d] matrix, want [%d %d]", job.where, lin.Name, r, c, lin.Out, lin.In)
	}
	lin.Quantized, lin.Dense, lin.finite = m, nil, true
	return nil
}

func (s *streamQuantizer) failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err != nil
}

func (s *streamQuantizer) fail(err error) {
	s.mu.Lock()
	first := s.err == nil
	if first {
		s.err = err
	}
	s.mu.Unlock()
	if first && s.onFail != nil {
		s.onFail()
	}
}

// add queues a linear; it blocks while the worker is busy, which keeps the
// loader from running ahead of the quantization. It returns the first error
// so far, so that the loader can stop reading.
func (s *streamQuantizer) add(job quantizeJob) error {
	if s.failed() {
		return s.wait()
	}
	s.jobs <- job
	return nil
}

// wait stops the worker once it is done and returns the first error.
// It may be called more than once.
func (s *streamQuantizer) wait() error {
	if s.jobs != nil {
		close(s.jobs)
		s.jobs = nil
		s.wg.Wait()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// firstNonFiniteParallel is kernels.FirstNonFinite split across the CPUs when w is
// large (an embedding matrix).
func firstNonFiniteParallel(w []float32) int {
	var mu sync.Mutex
	bad := -1
	parallel.For(len(w), 1<<20, 1, func(lo, hi int) {
		if allFinite(w[lo:hi]) {
			return
		}
		if i := kernels.FirstNonFinite(w[lo:hi]); i >= 0 {
			mu.Lock()
			if bad < 0 || lo+i < bad {
				bad = lo + i
			}
			mu.Unlock()
		}
	})
	return bad
}

// allFinite reports whether w holds no NaN or ±Inf. It tests two floats per
// 64-bit word without a branch per element: a float's exponent bits plus
// one carry into its sign bit exactly when they are all ones, and the
// lanes cannot carry into each other (0x7f800000 + 0x00800000 fits in 32
// bits). It is several times faster than firstNonFinite, which runs only
// to locate a value this reports.
func allFinite(w []float32) bool {
	const (
		exponents = 0x7f800000_7f800000
		carry     = 0x00800000_00800000
		signs     = 0x80000000_80000000
	)
	var acc uint64
	if len(w) >= 2 {
		words := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(w))), len(w)/2)
		for len(words) >= 4 {
			acc |= (words[0]&exponents + carry) | (words[1]&exponents + carry) |
				(words[2]&exponents + carry) | (words[3]&exponents + carry)
			words = words[4:]
		}
		for _, x := range words {
			acc |= x&exponents + carry
		}
	}
	if len(w)%2 == 1 {
		acc |= uint64(math.Float32bits(w[len(w)-1]))&exponents + carry
	}
	return acc&signs == 0
}
