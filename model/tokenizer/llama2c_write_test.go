package tokenizer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
	"testing"
)

// Writing the parsed tok512.bin must give back the file llama2.c's
// tokenizer.py wrote, byte for byte: the expected bytes come from llama2.c,
// not from this package.
func TestWriteLlama2CReproducesTok512(t *testing.T) {
	want, err := os.ReadFile("testdata/tok512.bin")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseLlama2C(want, 512)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteLlama2C(&buf, tok); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("wrote %d bytes that differ from tok512.bin (%d bytes)", buf.Len(), len(want))
	}
}

// tok512Marked rebuilds tok512 the way GGUF and SentencePiece spell it:
// U+2581 for spaces and plain "<s>", "</s>" for BOS and EOS.
func tok512Marked(t *testing.T) (pieces []string, scores []float32, types []int32) {
	t.Helper()
	tok := loadTok512(t)
	for id := range tok.VocabSize() {
		p := strings.ReplaceAll(tok.Piece(id), " ", spaceMarker)
		switch id {
		case 1:
			p = "<s>"
		case 2:
			p = "</s>"
		}
		pieces = append(pieces, p)
		scores = append(scores, tok.Score(id))
		types = append(types, int32(tok.Type(id)))
	}
	return pieces, scores, types
}

// A vocabulary that marks spaces with U+2581 is written as llama2.c's
// exporter writes a SentencePiece model: spaces restored, BOS and EOS
// renamed. Its output for tok512's SentencePiece spelling is tok512.bin.
func TestWriteLlama2CSpaceMarker(t *testing.T) {
	pieces, scores, types := tok512Marked(t)
	tok, err := NewSentencePiece(pieces, scores, types, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteLlama2C(&buf, tok); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/tok512.bin")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatal("output differs from tok512.bin")
	}
	back, err := ParseLlama2C(buf.Bytes(), len(pieces))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Once upon a time", "  two  spaces\n", "héllo ✓"} {
		if got, want := back.Encode(s), tok.Encode(s); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v after the round trip, %v before", s, got, want)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write(p []byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteLlama2CErrors(t *testing.T) {
	plain := []string{"<unk>", "\n<s>\n", "\n</s>\n", "<0x41>", "a", "b"}
	scores := make([]float32, len(plain))
	tests := []struct {
		name   string
		pieces []string
		types  []int32
		bos    int
		eos    int
		want   string
	}{
		{"BOS elsewhere", plain, nil, 0, 2, "BOS is 0 and EOS 2"},
		{"no EOS", plain, nil, 1, -1, "BOS is 1 and EOS -1"},
		{"user-defined piece", plain, []int32{2, 3, 3, 6, 4, 1}, 1, 2, `piece 4 ("a") has type user-defined, but llama2.c's format would read it back as normal`},
		{"unused piece", plain, []int32{2, 3, 3, 6, 1, 5}, 1, 2, "piece 5 (\"b\") has type unused"},
		{"extra control piece", plain, []int32{2, 3, 3, 6, 3, 1}, 1, 2, "has type control"},
		{"normal unk", plain, []int32{1, 3, 3, 6, 1, 1}, 1, 2, `piece 0 ("<unk>") has type normal, but llama2.c's format would read it back as unknown`},
		{"byte-like normal piece", plain, []int32{2, 3, 3, 1, 1, 1}, 1, 2, `piece 3 ("<0x41>") has type normal, but llama2.c's format would read it back as byte`},
		{"literal space beside markers", []string{"<unk>", "<s>", "</s>", "▁a", " a", "b"}, []int32{2, 3, 3, 1, 1, 1}, 1, 2, `piece 4 (" a") holds a literal space`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := NewSentencePiece(tt.pieces, scores, tt.types, tt.bos, tt.eos)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			err = WriteLlama2C(&buf, tok)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes before failing", buf.Len())
			}
		})
	}
	if err := WriteLlama2C(failingWriter{}, loadTok512(t)); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("err = %v, want the writer's error", err)
	}
	if err := WriteLlama2C(&bytes.Buffer{}, nil); err == nil {
		t.Error("nil tokenizer accepted")
	}
}

// Write the stories260K tokenizer back in llama2.c's format.
func ExampleWriteLlama2C() {
	tok, err := LoadLlama2C("testdata/tok512.bin", 512)
	if err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteLlama2C(&buf, tok); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d bytes, max_token_length %d\n", buf.Len(), binary.LittleEndian.Uint32(buf.Bytes()))
	// Output: 6227 bytes, max_token_length 7
}
