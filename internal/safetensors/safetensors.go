// Package safetensors reads and writes the safetensors tensor file format used
// by Hugging Face: an 8-byte little-endian header length N, N bytes of JSON
// describing each tensor's dtype, shape and byte range, then the raw
// little-endian tensor data.
//
// The reader validates everything a hostile file could get wrong (lengths,
// offsets, overlaps, gaps, dtype × shape sizes, duplicate names) and reports
// it as a *FormatError; it never panics on any input.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/golora/golora/internal/pagecache"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"unicode/utf8"
)

// maxHeaderLen bounds the JSON header, as the reference implementation does,
// so that a corrupt length cannot make the reader decode gigabytes of JSON.
const maxHeaderLen = 100_000_000

// metadataKey is the reserved header key holding the free-form string map.
const metadataKey = "__metadata__"

// Tensor is one named tensor. Data holds its elements as little-endian bytes
// in row-major order; len(Data) must be DType.Size() times the product of
// Shape (1 for a scalar with an empty Shape).
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// FormatError reports a malformed safetensors file.
type FormatError struct {
	Path   string // file name; empty when the bytes came from Parse
	Tensor string // tensor the problem is about; empty for the file as a whole
	Reason string // what is wrong
	Err    error  // underlying error, e.g. from the JSON decoder; may be nil
}

// Error implements error.
func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("safetensors: ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	if e.Tensor != "" {
		fmt.Fprintf(&b, "tensor %q: ", e.Tensor)
	}
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *FormatError) Unwrap() error { return e.Err }

// File is a parsed safetensors file. Its methods do not modify it, so they may
// be called from several goroutines, except Close.
type File struct {
	path     string
	body     []byte // the data section, after the header
	entries  map[string]entry
	names    []string // in data offset order
	metadata map[string]string
	release  func() error // unmaps the file; nil when there is nothing to release
	mapping  []byte       // the whole file mapping made by Open; nil for Parse
	fd       *os.File     // the file mapping maps, open until Close; nil for Parse
	closed   bool
}

// entry is one tensor's header record, validated.
type entry struct {
	dtype      DType
	shape      []int
	begin, end int // byte range within the data section
}

// Parse parses a safetensors file held in data. The returned File refers to
// data without copying it: the Data of its tensors are sub-slices of data.
func Parse(data []byte) (*File, error) {
	return parse(data, "")
}

// Names returns the tensor names in the order of their data in the file (the
// order the writer was given them), ties between empty tensors broken by name.
func (f *File) Names() []string {
	return slices.Clone(f.names)
}

// Len returns the number of tensors.
func (f *File) Len() int { return len(f.names) }

// Tensor returns the named tensor. Its Data is a slice into the file's bytes
// (the memory mapping for a File from Open), not a copy: it is read-only and
// valid only until Close. Shape is a fresh copy. After Close, Tensor reports
// false for every name.
func (f *File) Tensor(name string) (Tensor, bool) {
	e, ok := f.entries[name]
	if !ok || f.closed {
		return Tensor{}, false
	}
	return Tensor{
		Name:  name,
		DType: e.dtype,
		Shape: slices.Clone(e.shape),
		Data:  f.body[e.begin:e.end:e.end],
	}, true
}

// Metadata returns a copy of the header's "__metadata__" map, or nil if the
// file has none.
func (f *File) Metadata() map[string]string {
	if f.metadata == nil {
		return nil
	}
	m := make(map[string]string, len(f.metadata))
	for k, v := range f.metadata {
		m[k] = v
	}
	return m
}

// Path returns the file name given to Open, or "" for a File from Parse.
func (f *File) Path() string { return f.path }

// ReadData copies data, a part of the Data of one of f's tensors, into dst
// (at least len(data) bytes). For a File from Open it reads the file (pread)
// instead of touching the mapping, which takes no page fault per page and
// leaves none resident: a loader converting a tensor piece by piece through a
// small buffer reads several times faster this way. For a File from Parse it
// copies.
func (f *File) ReadData(dst, data []byte) error {
	if f.fd == nil || f.closed {
		copy(dst, data)
		return nil
	}
	if err := pagecache.Read(f.fd, f.mapping, data, dst); err != nil {
		return fmt.Errorf("safetensors: %s: %w", f.path, err)
	}
	return nil
}

// PrefetchData asks the kernel to read data, a part of the Data of one of
// f's tensors, into the page cache in the background (see
// pagecache.Prefetch), so that a ReadData of it later does not wait for the
// disk. It does nothing for a File from Parse.
func (f *File) PrefetchData(data []byte) {
	if f.fd != nil && !f.closed {
		pagecache.Prefetch(f.fd, f.mapping, data)
	}
}

// Stat describes the file Open opened, which Path may no longer name
// (another file renamed over it since): a caller that opens the path again
// checks that it has the same file (os.SameFile). It is an error for a File
// from Parse or a closed one.
func (f *File) Stat() (os.FileInfo, error) {
	if f.fd == nil || f.closed {
		return nil, errors.New("safetensors: Stat of a File that is not an open file")
	}
	return f.fd.Stat()
}

// FileOffset returns where data, a part of the Data of one of f's tensors,
// starts in the file, for a caller that reads the file itself (with
// O_DIRECT, say); false for a File from Parse or data not in f.
func (f *File) FileOffset(data []byte) (int64, bool) {
	if f.fd == nil || f.closed {
		return 0, false
	}
	return pagecache.Offset(f.mapping, data)
}

// EvictData asks the kernel to drop data, a part of the Data of one of f's
// tensors that the caller has read, from the page cache (see
// pagecache.Evict). It does nothing for a File from Parse.
func (f *File) EvictData(data []byte) {
	if f.fd != nil && !f.closed {
		pagecache.Evict(f.fd, f.mapping, data)
	}
}

// Close releases the memory mapping of a File from Open; Tensor Data slices
// obtained earlier must not be used afterwards. For a File from Parse it only
// marks the File closed. Calling Close more than once is harmless.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	f.body = nil
	if f.release != nil {
		err := f.release()
		f.release = nil
		if err != nil {
			return fmt.Errorf("safetensors: closing %s: %w", f.path, err)
		}
	}
	return nil
}

func parse(data []byte, path string) (*File, error) {
	fail := func(tensor string, err error, format string, args ...any) error {
		return &FormatError{Path: path, Tensor: tensor, Reason: fmt.Sprintf(format, args...), Err: err}
	}
	if len(data) < 8 {
		return nil, fail("", nil, "file is %d bytes, shorter than the 8-byte header length field", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > maxHeaderLen {
		return nil, fail("", nil, "header length %d exceeds the limit of %d bytes", n, maxHeaderLen)
	}
	if n > uint64(len(data)-8) {
		return nil, fail("", nil, "header length %d exceeds the %d bytes that follow the length field", n, len(data)-8)
	}
	header := data[8 : 8+n]
	body := data[8+n:]
	if !utf8.Valid(header) {
		return nil, fail("", nil, "header is not valid UTF-8")
	}

	f := &File{path: path, body: body, entries: make(map[string]entry)}
	err := decodeObject(header, func(key string, value json.RawMessage) error {
		if key == metadataKey {
			m, err := parseMetadata(value)
			if err != nil {
				return fail("", err, "invalid %s", metadataKey)
			}
			f.metadata = m
			return nil
		}
		if key == "" {
			return fail("", nil, "a tensor has an empty name")
		}
		e, err := parseEntry(value, len(body))
		if err != nil {
			return &FormatError{Path: path, Tensor: key, Reason: err.Error()}
		}
		f.entries[key] = e
		f.names = append(f.names, key)
		return nil
	})
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, err
		}
		var dup duplicateKeyError
		if errors.As(err, &dup) {
			return nil, fail(string(dup), nil, "name occurs twice in the header")
		}
		return nil, fail("", err, "invalid header")
	}

	slices.SortFunc(f.names, func(a, b string) int {
		ea, eb := f.entries[a], f.entries[b]
		if c := ea.begin - eb.begin; c != 0 {
			return c
		}
		if c := ea.end - eb.end; c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	// The data section must be tiled exactly, as the reference reader
	// requires: no overlaps (which would let two tensors alias), no gaps and
	// no trailing bytes (which hide data no tensor accounts for).
	next := 0
	for i, name := range f.names {
		e := f.entries[name]
		if e.begin < next {
			return nil, fail(name, nil, "data_offsets [%d, %d] overlap tensor %q, which ends at %d", e.begin, e.end, f.names[i-1], next)
		}
		if e.begin > next {
			return nil, fail(name, nil, "data_offsets [%d, %d] leave a gap of %d bytes after offset %d", e.begin, e.end, e.begin-next, next)
		}
		next = e.end
	}
	if next != len(body) {
		return nil, fail("", nil, "data section is %d bytes but the tensors cover only %d", len(body), next)
	}
	return f, nil
}

// decodeObject decodes data as a JSON object and calls fn for each member in
// order. Unlike decoding into a map, it rejects duplicate keys.
func decodeObject(data []byte, fn func(key string, value json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("object key %v is not a string", tok)
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return fmt.Errorf("value of %q: %w", key, err)
		}
		if seen[key] {
			return duplicateKeyError(key)
		}
		seen[key] = true
		if err := fn(key, value); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return errors.New("trailing data after the JSON object")
		}
		return err
	}
	return nil
}

// duplicateKeyError reports a key that occurs twice in one JSON object.
type duplicateKeyError string

func (e duplicateKeyError) Error() string { return fmt.Sprintf("duplicate key %q", string(e)) }

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{'
}

func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	if !isObject(raw) {
		return nil, errors.New("not a JSON object")
	}
	m := make(map[string]string)
	err := decodeObject(raw, func(key string, value json.RawMessage) error {
		var s string
		if bytes.Equal(value, []byte("null")) {
			return fmt.Errorf("value of %q is null, not a string", key)
		}
		if err := json.Unmarshal(value, &s); err != nil {
			return fmt.Errorf("value of %q is not a string", key)
		}
		m[key] = s
		return nil
	})
	return m, err
}

// parseEntry validates one tensor record against a data section of bodyLen
// bytes.
func parseEntry(raw json.RawMessage, bodyLen int) (entry, error) {
	if !isObject(raw) {
		return entry{}, errors.New("entry is not a JSON object")
	}
	var rec struct {
		DType   *string  `json:"dtype"`
		Shape   *[]int64 `json:"shape"`
		Offsets *[]int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		return entry{}, fmt.Errorf("invalid entry: %w", err)
	}
	switch {
	case rec.DType == nil:
		return entry{}, errors.New("dtype is missing")
	case rec.Shape == nil:
		return entry{}, errors.New("shape is missing")
	case rec.Offsets == nil:
		return entry{}, errors.New("data_offsets is missing")
	}
	dtype := DType(*rec.DType)
	if dtype.Size() == 0 {
		return entry{}, fmt.Errorf("unknown dtype %q", *rec.DType)
	}
	shape := make([]int, len(*rec.Shape))
	for i, d := range *rec.Shape {
		if d < 0 {
			return entry{}, fmt.Errorf("shape %v has a negative dimension", *rec.Shape)
		}
		if d > math.MaxInt {
			return entry{}, fmt.Errorf("shape %v has a dimension too large for this platform", *rec.Shape)
		}
		shape[i] = int(d)
	}
	offs := *rec.Offsets
	if len(offs) != 2 {
		return entry{}, fmt.Errorf("data_offsets has %d values, want 2", len(offs))
	}
	begin, end := offs[0], offs[1]
	if begin < 0 || end < 0 {
		return entry{}, fmt.Errorf("data_offsets [%d, %d] are negative", begin, end)
	}
	if begin > end {
		return entry{}, fmt.Errorf("data_offsets [%d, %d] begin after they end", begin, end)
	}
	if end > int64(bodyLen) {
		return entry{}, fmt.Errorf("data_offsets [%d, %d] run past the %d-byte data section", begin, end, bodyLen)
	}
	size, ok := byteSize(dtype, shape, uint64(bodyLen))
	if !ok {
		return entry{}, fmt.Errorf("dtype %s with shape %v is larger than the whole %d-byte data section", dtype, shape, bodyLen)
	}
	if size != uint64(end-begin) {
		return entry{}, fmt.Errorf("dtype %s with shape %v is %d bytes but data_offsets [%d, %d] span %d", dtype, shape, size, begin, end, end-begin)
	}
	return entry{dtype: dtype, shape: shape, begin: int(begin), end: int(end)}, nil
}

// byteSize returns DType.Size() times the number of elements of shape, and
// false if that exceeds limit. Checking against the limit at each step keeps
// the product from overflowing.
func byteSize(dtype DType, shape []int, limit uint64) (uint64, bool) {
	if slices.Contains(shape, 0) {
		return 0, true
	}
	n := uint64(dtype.Size())
	if n > limit {
		return 0, false
	}
	for _, d := range shape {
		if n > limit/uint64(d) {
			return 0, false
		}
		n *= uint64(d)
	}
	return n, true
}
