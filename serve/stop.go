package serve

import "strings"

// stopText accumulates a request's text and cuts it at the first stop
// string. Text that could be the start of a stop string is held back from
// the stream until the next token shows whether it is.
type stopText struct {
	stops   []string
	text    strings.Builder
	emitted int // bytes of text streamed
}

// add appends piece and returns the text that can be streamed now, and
// whether a stop string is complete (the text then ends before it).
func (s *stopText) add(piece string) (string, bool) {
	s.text.WriteString(piece)
	full := s.text.String()
	for _, stop := range s.stops {
		// A stop string cannot start before emitted: its start would have
		// been held back.
		if i := strings.Index(full[s.emitted:], stop); i >= 0 {
			cut := s.emitted + i
			for _, other := range s.stops {
				if j := strings.Index(full[s.emitted:], other); j >= 0 && s.emitted+j < cut {
					cut = s.emitted + j
				}
			}
			s.text.Reset()
			s.text.WriteString(full[:cut])
			out := full[s.emitted:cut]
			s.emitted = cut
			return out, true
		}
	}
	safe := len(full) - heldBack(full[s.emitted:], s.stops)
	out := full[s.emitted:safe]
	s.emitted = safe
	return out, false
}

// flush appends tail (the decoder's last bytes) and returns everything not
// streamed yet: at the end nothing more can complete a stop string.
func (s *stopText) flush(tail string) string {
	s.text.WriteString(tail)
	full := s.text.String()
	out := full[s.emitted:]
	s.emitted = len(full)
	return out
}

// heldBack returns the length of the longest suffix of text that is a proper
// prefix of a stop string.
func heldBack(text string, stops []string) int {
	longest := 0
	for _, stop := range stops {
		for n := min(len(stop)-1, len(text)); n > longest; n-- {
			if strings.HasSuffix(text, stop[:n]) {
				longest = n
				break
			}
		}
	}
	return longest
}
