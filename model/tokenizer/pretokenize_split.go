package tokenizer

import (
	"unicode/utf8"
)

// Pre-tokenizer patterns of the Llama-3 and Qwen2 tokenizer.json files (a
// Split pre-tokenizer, "Isolated", before a ByteLevel step without its own
// regex), and of llama.cpp's "llama-bpe" and "qwen2" pre-tokenizers. They
// differ only in how many digits a number piece takes.
const (
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// splitStep cuts each piece as llama3Pattern does (qwen2Pattern when
// maxDigits is 1). Go's regexp lacks the lookahead and Onig's leftmost-first
// backtracking, so the alternatives are tried by hand in the pattern's order.
type splitStep struct {
	maxDigits int
}

func (p splitStep) apply(in []split) []split {
	var out []split
	for _, s := range in {
		first := true
		llama3Split(s.text, p.maxDigits, func(w string) {
			out = append(out, split{w, s.atStart && first})
			first = false
		})
	}
	return out
}

func isCRLF(b byte) bool { return b == '\r' || b == '\n' }

// runeClassAt returns the character class and size of the rune at s[i:].
func runeClassAt(s string, i int) (cls, size int) {
	r, size := utf8.DecodeRuneInString(s[i:])
	return charClass(r, size), size
}

// llama3Split calls emit with each match of llama3Pattern over s, numbers
// taking at most maxDigits digits.
func llama3Split(s string, maxDigits int, emit func(string)) {
	for i := 0; i < len(s); {
		end := llama3MatchAt(s, i, maxDigits)
		emit(s[i:end])
		i = end
	}
}

// llama3MatchAt returns the end of the match that starts at s[i:].
func llama3MatchAt(s string, i, maxDigits int) int {
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if n := contractionFoldAt(s, i); n > 0 {
		return i + n
	}
	cls, size := runeClassAt(s, i)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if cls == classLetter {
		return runEnd(s, i, classLetter)
	}
	if cls != classNumber && !isCRLF(s[i]) && i+size < len(s) {
		if next, _ := runeClassAt(s, i+size); next == classLetter {
			return runEnd(s, i+size, classLetter)
		}
	}
	// \p{N}{1,maxDigits}
	if cls == classNumber {
		end := i
		for n := 0; n < maxDigits && end < len(s); n++ {
			c, sz := runeClassAt(s, end)
			if c != classNumber {
				break
			}
			end += sz
		}
		return end
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	start := -1
	switch {
	case cls == classOther:
		start = i
	case s[i] == ' ' && i+1 < len(s):
		if next, _ := runeClassAt(s, i+1); next == classOther {
			start = i + 1
		}
	}
	if start >= 0 {
		end := runEnd(s, start, classOther)
		for end < len(s) && isCRLF(s[end]) {
			end++
		}
		return end
	}
	// Whitespace from here on.
	end, last, lastNL := i, i, -1
	for end < len(s) {
		c, sz := runeClassAt(s, end)
		if c != classSpace {
			break
		}
		if isCRLF(s[end]) {
			lastNL = end
		}
		last = end
		end += sz
	}
	// \s*[\r\n]+ : greedy \s* gives back characters until a line break
	// follows, so the match ends after the run's last line break.
	if lastNL >= 0 {
		return lastNL + 1
	}
	// \s+(?!\S) leaves the last character for the word after the run;
	// a single character falls through to \s+.
	if end < len(s) && last > i {
		return last
	}
	return end
}

// runEnd returns the end of the run of characters of class cls from s[i:].
func runEnd(s string, i, cls int) int {
	for i < len(s) {
		c, sz := runeClassAt(s, i)
		if c != cls {
			break
		}
		i += sz
	}
	return i
}

// contractionFoldAt is contractionAt ignoring ASCII case.
func contractionFoldAt(s string, i int) int {
	if s[i] != '\'' || i+1 >= len(s) {
		return 0
	}
	lower := func(b byte) byte { return b | 0x20 }
	switch lower(s[i+1]) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if i+2 < len(s) && lower(s[i+2]) == 'e' {
			return 3
		}
	case 'l':
		if i+2 < len(s) && lower(s[i+2]) == 'l' {
			return 3
		}
	}
	return 0
}
