package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// split is a piece of a segment on its way to BPE. atStart marks the piece
// that begins the whole input, which Metaspace's "first" scheme needs.
type split struct {
	text    string
	atStart bool
}

// preStep is one pre-tokenizer of a tokenizer.json pipeline.
type preStep interface {
	apply(in []split) []split
}

// metaspaceStep replaces spaces with a marker, prepends the marker and may
// cut before every marker, as Hugging Face's Metaspace pre-tokenizer does.
type metaspaceStep struct {
	replacement string
	prepend     string // "always", "first" or "never"
	split       bool
}

func (m metaspaceStep) apply(in []split) []split {
	var out []split
	for _, s := range in {
		t := strings.ReplaceAll(s.text, " ", m.replacement)
		// Hugging Face prepends only when the piece does not already start
		// with the marker, so " x" and "x" encode alike.
		if !strings.HasPrefix(t, m.replacement) &&
			(m.prepend == "always" || (m.prepend == "first" && s.atStart)) {
			t = m.replacement + t
		}
		if !m.split {
			out = append(out, split{t, s.atStart})
			continue
		}
		first := true
		for t != "" {
			// Each marker starts a new piece (merged with what follows it).
			n := strings.Index(t[1:], m.replacement)
			end := len(t)
			if n >= 0 {
				end = n + 1
			}
			out = append(out, split{t[:end], s.atStart && first})
			first = false
			t = t[end:]
		}
	}
	return out
}

// byteLevelStep is Hugging Face's ByteLevel pre-tokenizer: an optional
// prefix space and the GPT-2 split. The byte-to-character mapping happens
// when BPE starts on each word.
type byteLevelStep struct {
	addPrefixSpace bool
	useRegex       bool
}

func (b byteLevelStep) apply(in []split) []split {
	var out []split
	for _, s := range in {
		t := s.text
		if b.addPrefixSpace && !strings.HasPrefix(t, " ") {
			t = " " + t
		}
		if !b.useRegex {
			out = append(out, split{t, s.atStart})
			continue
		}
		first := true
		gpt2Split(t, func(w string) {
			out = append(out, split{w, s.atStart && first})
			first = false
		})
	}
	return out
}

// digitsStep isolates numeric characters: each one alone, or runs of them.
type digitsStep struct {
	individual bool
}

func (d digitsStep) apply(in []split) []split {
	var out []split
	for _, s := range in {
		t := s.text
		first := true
		emit := func(w string) {
			out = append(out, split{w, s.atStart && first})
			first = false
		}
		start := 0
		for i := 0; i < len(t); {
			r, size := utf8.DecodeRuneInString(t[i:])
			if !isNumber(r, size) {
				i += size
				continue
			}
			if start < i {
				emit(t[start:i])
			}
			end := i + size
			if !d.individual {
				for end < len(t) {
					r2, s2 := utf8.DecodeRuneInString(t[end:])
					if !isNumber(r2, s2) {
						break
					}
					end += s2
				}
			}
			emit(t[i:end])
			start, i = end, end
		}
		if start < len(t) {
			emit(t[start:])
		}
	}
	return out
}

// isNumber is \p{N}; an invalid byte (RuneError of size 1) is not.
func isNumber(r rune, size int) bool {
	return size > 0 && !(r == utf8.RuneError && size == 1) && unicode.IsNumber(r)
}

// Character classes of the GPT-2 pattern.
const (
	classOther = iota // [^\s\p{L}\p{N}], and bytes that are not UTF-8
	classLetter
	classNumber
	classSpace
)

func charClass(r rune, size int) int {
	switch {
	case r == utf8.RuneError && size == 1:
		return classOther
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsSpace(r):
		return classSpace
	}
	return classOther
}

// gpt2Split cuts s as the GPT-2 pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// does, calling emit for each match in order. Go's regexp lacks the
// lookahead, so the alternatives are tried by hand, in the pattern's order.
func gpt2Split(s string, emit func(string)) {
	for i := 0; i < len(s); {
		if n := contractionAt(s, i); n > 0 {
			emit(s[i : i+n])
			i += n
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		cls := charClass(r, size)
		start := i
		runFrom := i
		if s[i] == ' ' && i+1 < len(s) {
			r2, size2 := utf8.DecodeRuneInString(s[i+1:])
			if c2 := charClass(r2, size2); c2 != classSpace {
				// " ?X+": the space joins the run that follows it.
				cls, runFrom = c2, i+1
			}
		}
		if cls != classSpace {
			end := runFrom
			for end < len(s) {
				r2, size2 := utf8.DecodeRuneInString(s[end:])
				if charClass(r2, size2) != cls {
					break
				}
				end += size2
			}
			emit(s[start:end])
			i = end
			continue
		}
		// Whitespace: \s+(?!\S) takes the run but leaves its last character
		// for the word that follows; a lone character falls to \s+.
		end, last := i, i
		for end < len(s) {
			r2, size2 := utf8.DecodeRuneInString(s[end:])
			if charClass(r2, size2) != classSpace {
				break
			}
			last = end
			end += size2
		}
		if end < len(s) && last > start {
			end = last
		}
		emit(s[start:end])
		i = end
	}
}

// contractionAt returns the length of 's, 't, 're, 've, 'm, 'll or 'd at
// s[i:], or 0.
func contractionAt(s string, i int) int {
	if s[i] != '\'' || i+1 >= len(s) {
		return 0
	}
	switch s[i+1] {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if i+2 < len(s) && s[i+2] == 'e' {
			return 3
		}
	case 'l':
		if i+2 < len(s) && s[i+2] == 'l' {
			return 3
		}
	}
	return 0
}

// byteLevelChars is GPT-2's bytes_to_unicode table: printable bytes stand
// for themselves, the others for characters from U+0100 up, in byte order.
func byteLevelChars() [256]rune {
	var t [256]rune
	next := rune(256)
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			t[b] = rune(b)
		} else {
			t[b] = next
			next++
		}
	}
	return t
}
