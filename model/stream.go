package model

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/golora/golora/internal/half"
	"github.com/golora/golora/internal/parallel"
	"github.com/golora/golora/quant"
)

// Loaders stream a checkpoint: each tensor is converted (and, with a
// Quantizer, quantized) right after it is read from the file mapping, and the
// mapping's pages are dropped as soon as they are converted, so loading never
// holds the whole file nor a float32 copy of the whole model.

// floatDecoder converts little-endian floating-point data of one storage
// type to float32.
type floatDecoder struct {
	size   int // bytes per element
	decode func(dst []float32, src []byte)
}

var (
	decodeF32 = floatDecoder{4, func(dst []float32, src []byte) {
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	}}
	decodeF16  = floatDecoder{2, half.DecodeF16}
	decodeBF16 = floatDecoder{2, half.DecodeBF16}
	decodeF64  = floatDecoder{8, func(dst []float32, src []byte) {
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
		}
	}}
)

// streamChunk is how many elements decodeStreaming converts before dropping
// the pages it has read: small against any model, large enough that the
// parallel split and the madvise calls cost nothing.
const streamChunk = 1 << 22

// decodeStreaming converts src into dst (len(dst) elements) chunk by chunk,
// each chunk split across the CPUs, calling drop on each chunk of src once
// it is converted (nil drop: nothing to give back).
func decodeStreaming(dst []float32, src []byte, dec floatDecoder, drop func([]byte)) {
	for lo := 0; lo < len(dst); lo += streamChunk {
		hi := min(len(dst), lo+streamChunk)
		parallel.For(hi-lo, 1<<16, 1, func(a, b int) {
			dec.decode(dst[lo+a:lo+b], src[(lo+a)*dec.size:(lo+b)*dec.size])
		})
		if drop != nil {
			drop(src[lo*dec.size : hi*dec.size])
		}
	}
}

// quantizeJob is one linear to fill with float32 values and quantize.
type quantizeJob struct {
	lin   *Linear
	where string // file (and tensor) for error messages
	// fill writes the linear's lin.Out·lin.In float32 values into dst and
	// gives back the source's pages.
	fill func(dst []float32) error
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
}

// newStreamQuantizer starts the worker; call wait to collect it.
func newStreamQuantizer(ctx context.Context, q quant.Quantizer) *streamQuantizer {
	s := &streamQuantizer{ctx: ctx, q: q, jobs: make(chan quantizeJob)}
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
			buf = make([]float32, n)
		}
		if err := s.run(job, buf[:n]); err != nil {
			s.fail(err)
		}
	}
}

func (s *streamQuantizer) run(job quantizeJob, w []float32) error {
	if err := job.fill(w); err != nil {
		return err
	}
	lin := job.lin
	if i := firstNonFinite(w); i >= 0 {
		return fmt.Errorf("model: %s: tensor %s.weight element %d is %v: the weights hold non-finite values", job.where, lin.Name, i, w[i])
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
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
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

// firstNonFinite returns the index of the first NaN or ±Inf in w, or -1. It
// tests the exponent bits (all ones for both) rather than converting to
// float64 for math.IsNaN and math.IsInf, which a profile of a 1B-parameter
// load showed costing a quarter of the quantization time.
func firstNonFinite(w []float32) int {
	const exponent = 0x7f800000
	for i, x := range w {
		if math.Float32bits(x)&exponent == exponent {
			return i
		}
	}
	return -1
}
