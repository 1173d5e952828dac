package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/golora/golora/internal/atomicfile"
)

// StreamTensor describes a tensor whose bytes are produced while the file is
// being written, so that a writer never holds a second full copy of them.
type StreamTensor struct {
	Name  string
	DType DType
	Shape []int
	// WriteData writes the tensor's little-endian data: exactly
	// DType.Size() times the product of Shape bytes.
	WriteData func(w io.Writer) error
}

// Write writes tensors to w in safetensors format, their data laid out in the
// order given, with the optional metadata as the header's "__metadata__".
// Everything is validated before the first byte is written: names must be
// non-empty, unique valid UTF-8 other than "__metadata__", and each Data must
// match its dtype and shape.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	stream := make([]StreamTensor, len(tensors))
	for i, t := range tensors {
		if _, err := t.NumElements(); err != nil {
			return err
		}
		data := t.Data
		stream[i] = StreamTensor{
			Name:  t.Name,
			DType: t.DType,
			Shape: t.Shape,
			WriteData: func(w io.Writer) error {
				_, err := w.Write(data)
				return err
			},
		}
	}
	return WriteStream(w, stream, metadata)
}

// WriteFile writes tensors to the named file as Write does. The file is
// replaced atomically: on any error the previous file, if any, is untouched.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		return Write(w, tensors, metadata)
	}, 0o644)
}

// WriteStreamFile writes tensors to the named file as WriteStream does,
// replacing it atomically.
func WriteStreamFile(path string, tensors []StreamTensor, metadata map[string]string) error {
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		return WriteStream(w, tensors, metadata)
	}, 0o644)
}

// WriteStream writes tensors to w in safetensors format, calling each
// tensor's WriteData in turn. The header is validated before anything is
// written (see Write); a WriteData that writes too few or too many bytes makes
// WriteStream fail, after which the output is incomplete.
func WriteStream(w io.Writer, tensors []StreamTensor, metadata map[string]string) error {
	header, sizes, err := encodeHeader(tensors, metadata)
	if err != nil {
		return err
	}
	var lenField [8]byte
	binary.LittleEndian.PutUint64(lenField[:], uint64(len(header)))
	if _, err := w.Write(lenField[:]); err != nil {
		return fmt.Errorf("safetensors: writing header: %w", err)
	}
	if _, err := w.Write(header); err != nil {
		return fmt.Errorf("safetensors: writing header: %w", err)
	}
	for i, t := range tensors {
		lw := &limitedWriter{w: w, remaining: sizes[i]}
		if err := t.WriteData(lw); err != nil {
			return fmt.Errorf("safetensors: tensor %q: writing data: %w", t.Name, err)
		}
		if lw.remaining != 0 {
			return fmt.Errorf("safetensors: tensor %q: WriteData wrote %d of its %d bytes", t.Name, sizes[i]-lw.remaining, sizes[i])
		}
	}
	return nil
}

// limitedWriter passes at most remaining bytes on to w and fails beyond that,
// so that a tensor cannot spill into the next one's byte range.
type limitedWriter struct {
	w         io.Writer
	remaining uint64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if uint64(len(p)) > l.remaining {
		return 0, fmt.Errorf("more data than dtype and shape allow (%d bytes left, %d written)", l.remaining, len(p))
	}
	n, err := l.w.Write(p)
	l.remaining -= uint64(n)
	return n, err
}

// encodeHeader validates tensors and metadata and returns the padded JSON
// header and each tensor's byte size.
func encodeHeader(tensors []StreamTensor, metadata map[string]string) ([]byte, []uint64, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if len(metadata) > 0 {
		writeJSONString(&b, metadataKey)
		b.WriteString(":{")
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			v := metadata[k]
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, nil, fmt.Errorf("safetensors: metadata %q: key or value is not valid UTF-8", k)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, v)
		}
		b.WriteByte('}')
	}

	sizes := make([]uint64, len(tensors))
	seen := make(map[string]bool, len(tensors))
	var offset uint64
	for i, t := range tensors {
		switch {
		case t.Name == "":
			return nil, nil, fmt.Errorf("safetensors: tensor %d has an empty name", i)
		case t.Name == metadataKey:
			return nil, nil, fmt.Errorf("safetensors: tensor %d: the name %q is reserved", i, metadataKey)
		case !utf8.ValidString(t.Name):
			return nil, nil, fmt.Errorf("safetensors: tensor %q: name is not valid UTF-8", t.Name)
		case seen[t.Name]:
			return nil, nil, fmt.Errorf("safetensors: tensor %q: name occurs twice", t.Name)
		case t.DType.Size() == 0:
			return nil, nil, fmt.Errorf("safetensors: tensor %q: unknown dtype %q", t.Name, t.DType)
		case t.WriteData == nil:
			return nil, nil, fmt.Errorf("safetensors: tensor %q: WriteData is nil", t.Name)
		}
		seen[t.Name] = true
		for _, d := range t.Shape {
			if d < 0 {
				return nil, nil, fmt.Errorf("safetensors: tensor %q: shape %v has a negative dimension", t.Name, t.Shape)
			}
		}
		size, ok := byteSize(t.DType, t.Shape, math.MaxInt64-offset)
		if !ok {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: dtype %s with shape %v is too large", t.Name, t.DType, t.Shape)
		}
		sizes[i] = size

		if b.Len() > 1 {
			b.WriteByte(',')
		}
		writeJSONString(&b, t.Name)
		b.WriteString(`:{"dtype":`)
		writeJSONString(&b, string(t.DType))
		b.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		b.WriteString(`],"data_offsets":[`)
		b.WriteString(strconv.FormatUint(offset, 10))
		b.WriteByte(',')
		offset += size
		b.WriteString(strconv.FormatUint(offset, 10))
		b.WriteString("]}")
	}
	b.WriteByte('}')
	// The reference writer pads with spaces so that the data section starts
	// 8-byte aligned (the length field is 8 bytes too).
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > maxHeaderLen {
		return nil, nil, fmt.Errorf("safetensors: header of %d bytes exceeds the limit of %d that readers accept", b.Len(), maxHeaderLen)
	}
	return b.Bytes(), sizes, nil
}

// writeJSONString appends s as a JSON string literal, without the HTML
// escaping that encoding/json applies by default.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	// Encoding a valid UTF-8 string cannot fail.
	_ = enc.Encode(s)
	// Encode appends a newline.
	b.Truncate(b.Len() - 1)
}
