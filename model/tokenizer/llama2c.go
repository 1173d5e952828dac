package tokenizer

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
)

// llama2.c tokenizer ids: fixed by its export script.
const (
	llama2cBOS = 1
	llama2cEOS = 2
)

// LoadLlama2C reads a llama2.c tokenizer file (such as tok512.bin or
// tokenizer.bin) holding vocabSize pieces; vocabSize comes from the model's
// header. Errors name the file.
func LoadLlama2C(path string, vocabSize int) (*SentencePiece, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := ParseLlama2C(data, vocabSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseLlama2C parses the bytes of a llama2.c tokenizer file: an int32
// max_token_length, then for each of vocabSize pieces a float32 score, an
// int32 byte length and the piece's bytes, all little-endian. Piece 0 is
// <unk>, 1 is BOS and 2 is EOS; <0xXX> pieces are bytes. Spaces are stored
// as spaces, not as U+2581.
func ParseLlama2C(data []byte, vocabSize int) (*SentencePiece, error) {
	if vocabSize <= llama2cEOS {
		return nil, fmt.Errorf("llama2.c tokenizer: vocabulary size %d too small (BOS is 1, EOS is 2)", vocabSize)
	}
	// Each piece takes at least 8 bytes, which bounds vocabSize before
	// allocating anything.
	if len(data) < 4 || (len(data)-4)/8 < vocabSize {
		return nil, fmt.Errorf("llama2.c tokenizer: %d bytes cannot hold %d pieces", len(data), vocabSize)
	}
	maxLen := int32(binary.LittleEndian.Uint32(data))
	if maxLen <= 0 {
		return nil, fmt.Errorf("llama2.c tokenizer: max_token_length %d is not positive", maxLen)
	}
	pieces := make([]string, vocabSize)
	scores := make([]float32, vocabSize)
	off := 4
	for i := range vocabSize {
		if len(data)-off < 8 {
			return nil, fmt.Errorf("llama2.c tokenizer: truncated at piece %d of %d (offset %d)", i, vocabSize, off)
		}
		scores[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		n := int32(binary.LittleEndian.Uint32(data[off+4:]))
		off += 8
		if math.IsNaN(float64(scores[i])) {
			return nil, fmt.Errorf("llama2.c tokenizer: piece %d has a NaN score (offset %d)", i, off-8)
		}
		if n < 0 || n > maxLen {
			return nil, fmt.Errorf("llama2.c tokenizer: piece %d has length %d, outside 0..max_token_length %d (offset %d)", i, n, maxLen, off-4)
		}
		if int(n) > len(data)-off {
			return nil, fmt.Errorf("llama2.c tokenizer: piece %d of %d bytes runs past the end of the data (offset %d)", i, n, off)
		}
		pieces[i] = string(data[off : off+int(n)])
		off += int(n)
	}
	if off != len(data) {
		return nil, fmt.Errorf("llama2.c tokenizer: %d bytes left after %d pieces: vocabulary size does not match the file", len(data)-off, vocabSize)
	}
	types := make([]int32, vocabSize)
	for i, p := range pieces {
		switch _, isByte := parseByteToken(p); {
		case i == 0:
			types[i] = PieceUnknown
		case i == llama2cBOS || i == llama2cEOS:
			types[i] = PieceControl
		case isByte:
			types[i] = PieceByte
		default:
			types[i] = PieceNormal
		}
	}
	return newSentencePiece(pieces, scores, types, llama2cBOS, llama2cEOS, " ")
}
