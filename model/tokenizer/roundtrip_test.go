package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// roundTripTokenizers are the three real vocabularies of testdata, each with
// the characters that it cannot give back (see the types' documentation).
func roundTripTokenizers(t testing.TB) []struct {
	name  string
	tok   Tokenizer
	lossy func(r rune) bool
} {
	t.Helper()
	smol := loadHF(t, "smollm")
	return []struct {
		name  string
		tok   Tokenizer
		lossy func(r rune) bool
	}{
		// llama2.c spells spaces as spaces, so nothing is lost.
		{"tok512", loadTok512(t), func(rune) bool { return false }},
		// U+2581 is the vocabulary's space marker.
		{"tinyllama", loadHF(t, "tinyllama"), func(r rune) bool { return string(r) == spaceMarker }},
		// SmolLM's vocabulary lacks a few bytes (0x04, 0x06, ...), which
		// Hugging Face drops.
		{"smollm", smol, func(r rune) bool {
			var buf [4]byte
			for _, b := range buf[:utf8.EncodeRune(buf[:], r)] {
				if smol.byteCharID[b] < 0 {
					return true
				}
			}
			return false
		}},
	}
}

// randomText draws a string from pools that stress tokenizers: repeated and
// leading spaces, newlines, control characters, accents, CJK, emoji with
// joiners and modifiers, astral characters, digits and contractions.
func randomText(rng *rand.Rand, lossy func(rune) bool) string {
	pools := []string{
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
		"0123456789",
		"      ",
		" \t\n\r\v\f",
		".,;:!?'\"-()[]{}<>/\\@#$%^&*_+=|~`",
		"éèêëàâäôöûüçñÅØßłœæ",
		"日本語中文字漢字한국어テキスト",
		"😀🎉👍🏽🇫🇷🚀🤖❤️\u200d",
		"\x00\x01\x02\x07\x08\x1b\x1f\x7f\u0085\u00a0\u2028\u2029\u200b\ufeff",
		"ЖжЩщΩωαβγעבאحبहि",
		"\u0301\u0308\u20ac\u2122\U0001D518\U00010348\U0010FFFD",
		"▁<>sS/|",
	}
	var b strings.Builder
	n := rng.IntN(60)
	for range n {
		if rng.IntN(10) == 0 {
			b.WriteString([]string{"'s", "'re", "'ll", " don't", "<s>", "</s>", "<|im_start|>", "<|endoftext|>", "\n\n"}[rng.IntN(9)])
			continue
		}
		// Occasionally any code point at all.
		if rng.IntN(20) == 0 {
			r := rune(rng.IntN(0x110000))
			if utf8.ValidRune(r) && !lossy(r) {
				b.WriteRune(r)
			}
			continue
		}
		p := []rune(pools[rng.IntN(len(pools))])
		if r := p[rng.IntN(len(p))]; !lossy(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range roundTripTokenizers(t) {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 2000 {
			s := randomText(rng, tc.lossy)
			ids := tc.tok.Encode(s)
			if got := tc.tok.Decode(ids); got != s {
				t.Fatalf("%s: case %d: Decode(Encode(%q)) = %q (ids %v)", tc.name, i, s, got, ids)
			}
			for _, id := range ids {
				if id < 0 || id >= tc.tok.VocabSize() {
					t.Fatalf("%s: Encode(%q) gave id %d outside the vocabulary", tc.name, s, id)
				}
			}
		}
	}
}

// TestRoundTripInvalidUTF8 checks that bytes that are not UTF-8 survive too
// (through byte pieces), although the interface promises only valid text.
func TestRoundTripInvalidUTF8(t *testing.T) {
	for _, tc := range roundTripTokenizers(t)[:2] {
		for _, s := range []string{"\xff", "a\xc3", "\xe6\x97 x", "\x80\x80abc \xf0\x9f\x98"} {
			if got := tc.tok.Decode(tc.tok.Encode(s)); got != s {
				t.Errorf("%s: Decode(Encode(%q)) = %q", tc.name, s, got)
			}
		}
	}
}

func TestStreamDecoder(t *testing.T) {
	for _, tc := range roundTripTokenizers(t) {
		rng := rand.New(rand.NewPCG(3, 4))
		for range 300 {
			s := randomText(rng, tc.lossy)
			ids := tc.tok.Encode(s)
			checkStream(t, tc.name, tc.tok, ids)
			// A decoder that cannot see the package's internals gives the
			// same text.
			checkStream(t, tc.name+"/opaque", opaque{tc.tok}, ids)
		}
	}
}

// opaque hides the concrete type, forcing StreamDecoder's generic path.
type opaque struct{ Tokenizer }

func checkStream(t *testing.T, name string, tok Tokenizer, ids []int) {
	t.Helper()
	want := tok.Decode(ids)
	d := NewStreamDecoder(tok)
	var got strings.Builder
	for _, id := range ids {
		piece := d.Next(id)
		if !utf8.ValidString(piece) {
			t.Fatalf("%s: Next(%d) returned invalid UTF-8 %q while decoding %q", name, id, piece, want)
		}
		got.WriteString(piece)
	}
	got.WriteString(d.Flush())
	if got.String() != want {
		t.Fatalf("%s: streamed %q, Decode gives %q", name, got.String(), want)
	}
}

func TestStreamDecoderHoldsBackPartialCharacters(t *testing.T) {
	tok := loadTok512(t)
	ids := tok.Encode("日本") // byte pieces: tok512 has no CJK characters
	if len(ids) < 6 {
		t.Fatalf("expected byte pieces, got %v", ids)
	}
	d := NewStreamDecoder(tok)
	var outs []string
	for _, id := range ids {
		outs = append(outs, d.Next(id))
	}
	if strings.Join(outs, "") != "日本" || d.Flush() != "" {
		t.Fatalf("streamed %q", outs)
	}
	if outs[1] != "" || outs[2] != "" {
		t.Errorf("a partial character was returned early: %q", outs)
	}
	// An unfinished character at the end comes out of Flush.
	d = NewStreamDecoder(tok)
	if got := d.Next(ids[0]) + d.Next(ids[1]) + d.Next(ids[2]); got != "" {
		t.Errorf("Next returned %q for a partial character", got)
	}
	if got := d.Flush(); got != tok.Decode(ids[:3]) {
		t.Errorf("Flush = %q, want %q", got, tok.Decode(ids[:3]))
	}
}

func TestStreamDecoderPrime(t *testing.T) {
	for _, tc := range roundTripTokenizers(t) {
		for _, tok := range []Tokenizer{tc.tok, opaque{tc.tok}} {
			prompt := tok.Encode("Once upon a time")
			gen := tok.Encode("Once upon a time, there was a girl")[len(prompt)-1:]
			all := slices.Concat(prompt[:len(prompt)-1], gen)
			d := NewStreamDecoder(tok)
			d.Prime(all[:len(prompt)])
			var got strings.Builder
			for _, id := range all[len(prompt):] {
				got.WriteString(d.Next(id))
			}
			got.WriteString(d.Flush())
			full, head := tok.Decode(all), tok.Decode(all[:len(prompt)])
			if head+got.String() != full {
				t.Errorf("%s: prompt %q + streamed %q != %q", tc.name, head, got.String(), full)
			}
		}
	}
}

// naiveMerge is the textbook BPE loop (rescan every pair after each merge),
// as llama2.c does it; mergeSymbols must agree with it.
func naiveMerge(ids []int, frozen []bool, rule pairRule) []int {
	ids = slices.Clone(ids)
	frozen = slices.Clone(frozen)
	for {
		best, bestP, bestID := -1, 0.0, 0
		for i := 0; i+1 < len(ids); i++ {
			if frozen != nil && (frozen[i] || frozen[i+1]) {
				continue
			}
			if m, p, ok := rule(ids[i], ids[i+1]); ok && (best < 0 || p < bestP) {
				best, bestP, bestID = i, p, m
			}
		}
		if best < 0 {
			return ids
		}
		ids[best] = bestID
		ids = slices.Delete(ids, best+1, best+2)
		if frozen != nil {
			frozen = slices.Delete(frozen, best+1, best+2)
		}
	}
}

func TestMergeSymbolsMatchesNaive(t *testing.T) {
	// A random merge table over 40 symbols with many equal priorities, to
	// exercise the leftmost-on-ties rule.
	rng := rand.New(rand.NewPCG(5, 6))
	type pair struct{ a, b int }
	table := map[pair][2]int{}
	for range 300 {
		table[pair{rng.IntN(40), rng.IntN(40)}] = [2]int{rng.IntN(40), rng.IntN(8)}
	}
	rule := func(l, r int) (int, float64, bool) {
		m, ok := table[pair{l, r}]
		return m[0], float64(m[1]), ok
	}
	for range 3000 {
		ids := make([]int, rng.IntN(30))
		for i := range ids {
			ids[i] = rng.IntN(40)
		}
		var frozen []bool
		if rng.IntN(2) == 0 {
			frozen = make([]bool, len(ids))
			for i := range frozen {
				frozen[i] = rng.IntN(8) == 0
			}
		}
		want := naiveMerge(ids, frozen, rule)
		if got := mergeSymbols(slices.Clone(ids), frozen, rule); !slices.Equal(got, want) {
			t.Fatalf("mergeSymbols(%v, %v) = %v, naive %v", ids, frozen, got, want)
		}
	}
}
