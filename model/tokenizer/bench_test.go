package tokenizer

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// benchText is about 4 KB of mixed prose, as a prompt or training sample.
var benchText = strings.Repeat("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "+
	"One day, she saw a big, red ball — 3 of them! \"Can I play?\" she asked. Café, 日本, 😀.\n", 24)

// BenchmarkEncode compares the heap-based merge loop (ours) with the
// textbook loop that rescans all pairs after every merge (llama2.c's), on
// the same initial symbols, for each real vocabulary.
func BenchmarkEncode(b *testing.B) {
	type encoder interface {
		encode(text string, merge mergeFunc) []int
	}
	toks := []struct {
		name string
		tok  encoder
	}{
		{"tok512", loadTok512(b)},
		{"tinyllama", loadHF(b, "tinyllama")},
		{"smollm", loadHF(b, "smollm")},
	}
	for _, tc := range toks {
		for _, m := range []struct {
			name  string
			merge mergeFunc
		}{{"heap", mergeSymbols}, {"naive", naiveMerge}} {
			b.Run(tc.name+"/"+m.name, func(b *testing.B) {
				b.SetBytes(int64(len(benchText)))
				n := 0
				for b.Loop() {
					n += len(tc.tok.encode(benchText, m.merge))
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"tok512", "tinyllama", "smollm"} {
		var tok Tokenizer
		if name == "tok512" {
			tok = loadTok512(b)
		} else {
			tok = loadHF(b, name)
		}
		ids := tok.Encode(benchText)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(benchText)))
			for b.Loop() {
				tok.Decode(ids)
			}
			b.ReportMetric(float64(len(ids)*b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkNewSentencePiece builds a 32000-piece vocabulary (the size of
// stories15M's and Llama 2's) and reports the heap the tokenizer keeps, per
// piece: what a server holds for good.
func BenchmarkNewSentencePiece(b *testing.B) {
	pieces := []string{"<unk>", "<s>", "</s>"}
	for c := range 256 {
		pieces = append(pieces, fmt.Sprintf("<0x%02X>", c))
	}
	for len(pieces) < 32000 {
		pieces = append(pieces, fmt.Sprintf("\u2581w%d", len(pieces)))
	}
	scores := make([]float32, len(pieces))
	var kept uint64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tok, err := NewSentencePiece(pieces, scores, nil, 1, 2)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		kept = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(tok)
	}
	b.ReportMetric(float64(kept)/float64(len(pieces)), "heap-bytes/piece")
}
