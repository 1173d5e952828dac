package tokenizer

import (
	"sort"
	"strings"
)

// matchPattern is a string matched whole in the input (an added token or a
// user-defined piece) and the id it stands for.
type matchPattern struct {
	text string
	id   int
}

// matcher finds the longest pattern starting at a position. Patterns are
// bucketed by first byte and sorted longest first, which is enough for the
// tens to hundreds of added tokens that vocabularies carry.
type matcher struct {
	byFirst [256][]int // pattern indices, longest first
	pats    []matchPattern
}

func newMatcher(pats []matchPattern) *matcher {
	m := &matcher{pats: pats}
	for i, p := range pats {
		if p.text == "" {
			continue
		}
		m.byFirst[p.text[0]] = append(m.byFirst[p.text[0]], i)
	}
	for b := range m.byFirst {
		l := m.byFirst[b]
		sort.SliceStable(l, func(i, j int) bool { return len(pats[l[i]].text) > len(pats[l[j]].text) })
	}
	return m
}

// longestAt returns the id and length of the longest pattern that starts at
// s[i:], or size 0 if none does.
func (m *matcher) longestAt(s string, i int) (id, size int) {
	if idx := m.indexAt(s, i); idx >= 0 {
		return m.pats[idx].id, len(m.pats[idx].text)
	}
	return 0, 0
}

// indexAt is longestAt returning the pattern's index, or -1.
func (m *matcher) indexAt(s string, i int) int {
	if i >= len(s) {
		return -1
	}
	for _, idx := range m.byFirst[s[i]] {
		if strings.HasPrefix(s[i:], m.pats[idx].text) {
			return idx
		}
	}
	return -1
}
