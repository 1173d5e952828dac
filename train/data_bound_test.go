package train

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/model"
)

// longStory repeats the quick start's first story until it is n bytes.
func longStory(t testing.TB, n int) string {
	data, err := os.ReadFile(filepath.Join("..", "examples", "quickstart", "data", "train.jsonl"))
	require.NoError(t, err)
	var rec struct{ Text string }
	line, _, _ := bytes.Cut(data, []byte("\n"))
	require.NoError(t, json.Unmarshal(line, &rec))
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(rec.Text)
		b.WriteString(" ")
	}
	return b.String()[:n]
}

func jsonLine(t testing.TB, text string) []byte {
	js, err := json.Marshal(map[string]string{"text": text})
	require.NoError(t, err)
	return append(js, '\n')
}

// TestLongLineMemoryBounded reads one 4 MB line with room for 33 tokens
// (--seq-len 32): the bytes allocated must stay a small multiple of the line
// (the scanner's buffer and the decoded string), where tokenizing the whole
// line costs about a hundred times its size. The tokens kept are those of
// the whole text, cut.
func TestLongLineMemoryBounded(t *testing.T) {
	ck, err := model.Default()
	require.NoError(t, err)
	text := longStory(t, 4<<20)
	line := jsonLine(t, text)
	vocab := ck.Weights.Config.VocabSize

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	exs, err := ReadJSONL(bytes.NewReader(line), "long.jsonl", ck.Tokenizer, vocab, 33)
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("one %d-byte line, 33 tokens kept: %.1f MB allocated (%.1f× the line)", len(line), float64(allocated)/1e6, float64(allocated)/float64(len(line)))
	require.Less(t, allocated, uint64(8*len(line)))
	require.Len(t, exs[0].Tokens, 33)

	short := text[:20000]
	whole, err := ReadJSONL(bytes.NewReader(jsonLine(t, short)), "short.jsonl", ck.Tokenizer, vocab, 0)
	require.NoError(t, err)
	for _, limit := range []int{2, 33, 129, 1000} {
		cut, err := ReadJSONL(bytes.NewReader(jsonLine(t, short)), "short.jsonl", ck.Tokenizer, vocab, limit)
		require.NoError(t, err)
		require.Equal(t, whole[0].Tokens[:limit], cut[0].Tokens, "limit %d", limit)
		require.Equal(t, whole[0].Loss[:limit], cut[0].Loss, "limit %d", limit)
	}
}

// BenchmarkReadLongLine reports the bytes allocated per byte of a 1 MB
// line, whole and with 33 tokens kept.
func BenchmarkReadLongLine(b *testing.B) {
	ck, err := model.Default()
	if err != nil {
		b.Fatal(err)
	}
	line := jsonLine(b, longStory(b, 1<<20))
	for _, limit := range []int{0, 33} {
		b.Run(fmt.Sprintf("keep=%d", limit), func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range b.N {
				if _, err := ReadJSONL(bytes.NewReader(line), "long.jsonl", ck.Tokenizer, ck.Weights.Config.VocabSize, limit); err != nil {
					b.Fatal(err)
				}
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/float64(len(line)), "B-alloc/B-line")
		})
	}
}

func TestJSONLByteOrderMarkAndLineLimit(t *testing.T) {
	in := "\xef\xbb\xbf" + `{"text": "hi"}` + "\n" + `{"text": "yo"}` + "\n"
	exs, err := ReadJSONL(strings.NewReader(in), "bom.jsonl", byteTokenizer{}, 300, 0)
	require.NoError(t, err)
	require.Len(t, exs, 2)

	long := `{"text": "` + strings.Repeat("a", maxLineBytes) + `"}`
	_, err = ReadJSONL(strings.NewReader(`{"text": "ok"}`+"\n"+long), "long.jsonl", byteTokenizer{}, 300, 0)
	require.ErrorContains(t, err, "long.jsonl:2: the line is longer than the limit of 64 MiB")
}

func TestJSONLWithoutTokenizer(t *testing.T) {
	exs, err := ReadJSONL(strings.NewReader(`{"input_ids": [1, 2, 3]}`), "ids.jsonl", nil, 300, 0)
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3}, exs[0].Tokens)
	_, err = ReadJSONL(strings.NewReader(`{"text": "hi"}`), "text.jsonl", nil, 300, 0)
	require.ErrorContains(t, err, "text.jsonl:1: a text record needs a tokenizer")
}

// TestWithEnd closes text examples with the token WithEnd names, as a
// target.
func TestWithEnd(t *testing.T) {
	ck, err := model.Default()
	require.NoError(t, err)
	tok := ck.Tokenizer
	exs, err := ReadJSONL(strings.NewReader(`{"text": "The end."}`), "end.jsonl", WithEnd(tok, tok.BOS()), 512, 0)
	require.NoError(t, err)
	ex := exs[0]
	require.Equal(t, tok.BOS(), ex.Tokens[0])
	require.False(t, ex.Loss[0])
	require.Equal(t, tok.BOS(), ex.Tokens[len(ex.Tokens)-1])
	require.True(t, ex.Loss[len(ex.Loss)-1])
	require.Equal(t, tok.Encode("The end."), ex.Tokens[1:len(ex.Tokens)-1])
}
