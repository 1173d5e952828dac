package tokenizer

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/golora/golora/internal/fsutil"
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
	data, err := fsutil.ReadRegular(path, fsutil.TokenizerLimit)
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

// WriteLlama2C writes sp in llama2.c's tokenizer format (see ParseLlama2C),
// as llama2.c's tokenizer.py exports a SentencePiece model: max_token_length
// is the longest piece in bytes, and when the vocabulary marks spaces with
// U+2581 (as GGUF and SentencePiece do) each U+2581 becomes a space and BOS
// and EOS are written as "\n<s>\n" and "\n</s>\n".
//
// The format records no piece types, BOS or EOS: a reader takes piece 0 as
// <unk>, 1 as BOS, 2 as EOS, <0xXX> pieces as bytes and the rest as normal.
// WriteLlama2C returns an error, writing nothing, for a vocabulary that this
// would change: BOS or EOS elsewhere, another piece typed control, unknown,
// user-defined or unused, a byte-like piece that is not typed byte, or a
// piece that would read back as different text.
func WriteLlama2C(w io.Writer, sp *SentencePiece) error {
	if sp == nil {
		return fmt.Errorf("tokenizer: WriteLlama2C: nil tokenizer")
	}
	pieces, err := llama2CPieces(sp)
	if err != nil {
		return fmt.Errorf("tokenizer: WriteLlama2C: %w", err)
	}
	maxLen := 1
	for _, p := range pieces {
		maxLen = max(maxLen, len(p))
	}
	if maxLen > math.MaxInt32 {
		return fmt.Errorf("tokenizer: WriteLlama2C: a piece of %d bytes does not fit llama2.c's int32 length", maxLen)
	}
	bw := bufio.NewWriter(w)
	var word [4]byte
	put := func(v uint32) {
		binary.LittleEndian.PutUint32(word[:], v)
		bw.Write(word[:])
	}
	put(uint32(maxLen))
	for i, p := range pieces {
		put(math.Float32bits(sp.scores[i]))
		put(uint32(len(p)))
		bw.WriteString(p)
	}
	// bufio.Writer keeps its first error and returns it from Flush.
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("tokenizer: WriteLlama2C: %w", err)
	}
	return nil
}

// llama2CPieces returns the pieces of sp as llama2.c's format spells them,
// after checking that ParseLlama2C would rebuild the same tokenizer from them.
func llama2CPieces(sp *SentencePiece) ([]string, error) {
	if sp.bos != llama2cBOS || sp.eos != llama2cEOS {
		return nil, fmt.Errorf("BOS is %d and EOS %d, but llama2.c's format fixes them at %d and %d", sp.bos, sp.eos, llama2cBOS, llama2cEOS)
	}
	marked := sp.space == spaceMarker
	pieces := make([]string, sp.VocabSize())
	for i := range pieces {
		p := sp.piece(i)
		_, isByte := parseByteToken(p)
		want := int8(PieceNormal)
		switch {
		case i == 0:
			want = PieceUnknown
		case i == llama2cBOS || i == llama2cEOS:
			want = PieceControl
		case isByte:
			want = PieceByte
		}
		if sp.types[i] != want {
			return nil, fmt.Errorf("piece %d (%q) has type %s, but llama2.c's format would read it back as %s",
				i, p, pieceTypeName(sp.types[i]), pieceTypeName(want))
		}
		if !marked {
			pieces[i] = p
			continue
		}
		if strings.Contains(p, " ") && want != PieceControl {
			return nil, fmt.Errorf("piece %d (%q) holds a literal space, which llama2.c's format cannot tell from a U+2581 space marker", i, p)
		}
		switch i {
		case llama2cBOS:
			pieces[i] = "\n<s>\n"
		case llama2cEOS:
			pieces[i] = "\n</s>\n"
		default:
			pieces[i] = strings.ReplaceAll(p, spaceMarker, " ")
		}
	}
	return pieces, nil
}

// pieceTypeName names a piece type for error messages.
func pieceTypeName(t int8) string {
	switch t {
	case PieceNormal:
		return "normal"
	case PieceUnknown:
		return "unknown"
	case PieceControl:
		return "control"
	case PieceUserDefined:
		return "user-defined"
	case PieceUnused:
		return "unused"
	case PieceByte:
		return "byte"
	}
	return fmt.Sprintf("%d", t)
}
