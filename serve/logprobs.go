package serve

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/golora/golora/internal/kernels"
	"github.com/golora/golora/model/tokenizer"
)

// MaxTopLogprobs is the most alternatives a request can ask for at each
// position (Request.TopLogprobs).
const MaxTopLogprobs = 20

// TokenLogprob is a token with its log-probability under the model and the
// most likely tokens at its position.
//
// Log-probabilities are the log-softmax of the logits the sampler is given,
// before temperature and top-p shape them: the model's own distribution,
// whatever the sampling settings (what vLLM returns by default).
type TokenLogprob struct {
	ID      int
	Logprob float64
	// Top holds the Request.TopLogprobs most likely tokens at the position,
	// most likely first (the lower id first on ties); the token itself is
	// among them only if it is that likely.
	Top []TopLogprob
}

// TopLogprob is one of the most likely tokens at a position.
type TopLogprob struct {
	ID      int
	Logprob float64
}

// tokenLogprob returns the log-probability of token id under logits, and
// the k most likely tokens. The log-sum-exp is kernels.CrossEntropy's (SIMD
// exponentials, summed in float64; scratch holds len(logits) values), a
// second pass keeps the k best (sorted by insertion, k being small).
func tokenLogprob(scratch, logits []float32, id, k int) TokenLogprob {
	lse := kernels.CrossEntropy(scratch, logits, id) + float64(logits[id])
	top := make([]TopLogprob, 0, k)
	for i, l := range logits {
		v := float64(l)
		if k == 0 {
			break
		}
		if len(top) == k && v <= top[k-1].Logprob || v != v {
			continue // not among the k best, or NaN
		}
		j := len(top)
		if j < k {
			top = append(top, TopLogprob{})
		} else {
			j--
		}
		for ; j > 0 && top[j-1].Logprob < v; j-- {
			top[j] = top[j-1]
		}
		top[j] = TopLogprob{ID: i, Logprob: v}
	}
	for i := range top {
		top[i].Logprob -= lse
	}
	return TokenLogprob{ID: id, Logprob: float64(logits[id]) - lse, Top: top}
}

// lpRenderer writes a choice's logprobs in the API's form, a token at a
// time: each token's text is the text it adds after the token before it,
// so that the texts of a completion's tokens put together are its text.
type lpRenderer struct {
	tok     tokenizer.Tokenizer
	chat    bool
	prev    int // the token before the next one, −1 at the start
	offset  int // the next token's offset in the choice's text
	echoLen int // the length of the echoed prompt, where the completion's offsets start
}

// newRenderer returns the renderer of a choice of req, whose prompt is
// echoed (echo is its text) or not.
func (s *Server) newRenderer(req *completionRequest, prompt []int, echo string) *lpRenderer {
	r := &lpRenderer{tok: s.e.Tokenizer(), chat: req.chatInput, prev: prompt[len(prompt)-1]}
	if req.Echo {
		r.prev, r.echoLen = -1, len(echo)
	}
	return r
}

// completionLogprobs is a /v1/completions choice's logprobs: one entry per
// token in each list; the first token of an echoed prompt has null
// logprobs, nothing predicting it.
type completionLogprobs struct {
	Tokens        []string   `json:"tokens"`
	TokenLogprobs []*float64 `json:"token_logprobs"`
	TopLogprobs   []topMap   `json:"top_logprobs"`
	TextOffset    []int      `json:"text_offset"`
}

// topMap is a JSON object from token texts to logprobs, most likely first.
// Two tokens of the same text keep the first, the more likely (a JSON
// object's keys are unique: clients keep one of the values).
type topMap []topEntry

type topEntry struct {
	text    string
	logprob float64
}

func (m topMap) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	b := []byte{'{'}
	seen := make(map[string]bool, len(m))
	for _, e := range m {
		if seen[e.text] {
			continue
		}
		seen[e.text] = true
		if len(seen) > 1 {
			b = append(b, ',')
		}
		k, err := json.Marshal(e.text)
		if err != nil {
			return nil, err
		}
		b = append(b, k...)
		b = append(b, ':')
		b = strconv.AppendFloat(b, e.logprob, 'g', -1, 64)
	}
	return append(b, '}'), nil
}

// chatLogprob is an entry of a chat choice's logprobs.content.
type chatLogprob struct {
	Token       string       `json:"token"`
	Logprob     float64      `json:"logprob"`
	Bytes       []int        `json:"bytes"`
	TopLogprobs []chatLogAlt `json:"top_logprobs"`
}

type chatLogAlt struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

// finiteLogprob maps the −Inf of a token the model rules out (a logit of
// −Inf) to −9999, as vLLM does: JSON has no infinities.
func finiteLogprob(x float64) float64 { return max(x, -9999) }

// text returns the text that token id adds after the token before it.
func (r *lpRenderer) text(id int) string {
	if r.prev < 0 {
		return r.tok.Decode([]int{id})
	}
	before, after := r.tok.Decode([]int{r.prev}), r.tok.Decode([]int{r.prev, id})
	if rest, ok := strings.CutPrefix(after, before); ok {
		return rest
	}
	return r.tok.Decode([]int{id})
}

// promptLogprobs returns the completions logprobs of an echoed prompt:
// lps holds those of prompt[1:].
func (r *lpRenderer) promptLogprobs(prompt []int, lps []TokenLogprob) *completionLogprobs {
	lp := new(completionLogprobs)
	text := r.text(prompt[0])
	lp.Tokens = append(lp.Tokens, text)
	lp.TokenLogprobs = append(lp.TokenLogprobs, nil)
	lp.TopLogprobs = append(lp.TopLogprobs, nil)
	lp.TextOffset = append(lp.TextOffset, r.offset)
	r.offset += len(text)
	r.prev = prompt[0]
	r.addCompletion(lp, lps)
	r.offset = r.echoLen
	return lp
}

// logprobs returns the logprobs of generated tokens: *completionLogprobs
// for /v1/completions, chat's {"content": […]} for chat.
func (r *lpRenderer) logprobs(lps []TokenLogprob) any {
	if !r.chat {
		lp := new(completionLogprobs)
		r.addCompletion(lp, lps)
		return lp
	}
	content := make([]chatLogprob, 0, len(lps))
	for _, t := range lps {
		text := r.text(t.ID)
		e := chatLogprob{Token: text, Logprob: finiteLogprob(t.Logprob), Bytes: byteList(text), TopLogprobs: make([]chatLogAlt, 0, len(t.Top))}
		for _, a := range t.Top {
			at := r.text(a.ID)
			e.TopLogprobs = append(e.TopLogprobs, chatLogAlt{Token: at, Logprob: finiteLogprob(a.Logprob), Bytes: byteList(at)})
		}
		content = append(content, e)
		r.prev = t.ID
	}
	return map[string]any{"content": content, "refusal": nil}
}

// addCompletion appends lps to lp; each position's top_logprobs holds the
// token itself too (OpenAI's "up to logprobs+1" entries).
func (r *lpRenderer) addCompletion(lp *completionLogprobs, lps []TokenLogprob) {
	for _, t := range lps {
		text := r.text(t.ID)
		logprob := finiteLogprob(t.Logprob)
		top := make(topMap, 0, len(t.Top)+1)
		in := false
		for _, a := range t.Top {
			top = append(top, topEntry{r.text(a.ID), finiteLogprob(a.Logprob)})
			in = in || a.ID == t.ID
		}
		if !in {
			top = append(top, topEntry{text, logprob})
		}
		lp.Tokens = append(lp.Tokens, text)
		lp.TokenLogprobs = append(lp.TokenLogprobs, &logprob)
		lp.TopLogprobs = append(lp.TopLogprobs, top)
		lp.TextOffset = append(lp.TextOffset, r.offset)
		r.offset += len(text)
		r.prev = t.ID
	}
}

// byteList is text's bytes as JSON numbers (chat's bytes field), which
// holds a token's bytes even when they are not a whole UTF-8 character.
func byteList(text string) []int {
	b := make([]int, len(text))
	for i := range len(text) {
		b[i] = int(text[i])
	}
	return b
}
