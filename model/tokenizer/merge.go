package tokenizer

import "container/heap"

// pairRule tells the merge loop whether two adjacent tokens merge, into which
// token, and with what priority (lower merges first).
type pairRule func(left, right int) (merged int, priority float64, ok bool)

// mergeCandidate is a possible merge of the symbols at left and right.
type mergeCandidate struct {
	priority    float64
	left, right int // symbol indices
	leftID      int
	rightID     int
	merged      int
}

// mergeQueue orders candidates by priority, then leftmost first.
type mergeQueue []mergeCandidate

func (q mergeQueue) Len() int { return len(q) }
func (q mergeQueue) Less(i, j int) bool {
	if q[i].priority != q[j].priority {
		return q[i].priority < q[j].priority
	}
	return q[i].left < q[j].left
}
func (q mergeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *mergeQueue) Push(x any)   { *q = append(*q, x.(mergeCandidate)) }
func (q *mergeQueue) Pop() any {
	old := *q
	c := old[len(old)-1]
	*q = old[:len(old)-1]
	return c
}

// mergeSymbols applies BPE merges to ids in place and returns the result:
// repeatedly the adjacent pair with the lowest priority (leftmost on ties)
// is replaced by its merged token, until no pair merges. Symbols marked
// frozen never merge. A heap of candidates with lazy invalidation keeps this
// O(n log n) rather than rescanning the sequence after every merge; short
// words (most words after pre-tokenization) take the plain scan, which is
// cheaper below a dozen symbols.
func mergeSymbols(ids []int, frozen []bool, rule pairRule) []int {
	n := len(ids)
	if n < 2 {
		return ids
	}
	if n <= shortWord {
		return mergeShort(ids, frozen, rule)
	}
	next := make([]int, n)
	prev := make([]int, n)
	alive := make([]bool, n)
	for i := range n {
		next[i] = i + 1
		prev[i] = i - 1
		alive[i] = true
	}
	next[n-1] = -1
	isFrozen := func(i int) bool { return frozen != nil && frozen[i] }

	candidate := func(l, r int) (mergeCandidate, bool) {
		if l < 0 || r < 0 || isFrozen(l) || isFrozen(r) {
			return mergeCandidate{}, false
		}
		m, p, ok := rule(ids[l], ids[r])
		return mergeCandidate{priority: p, left: l, right: r, leftID: ids[l], rightID: ids[r], merged: m}, ok
	}
	q := make(mergeQueue, 0, n)
	for i := 0; i+1 < n; i++ {
		if c, ok := candidate(i, i+1); ok {
			q = append(q, c)
		}
	}
	heap.Init(&q)
	push := func(l, r int) {
		if c, ok := candidate(l, r); ok {
			heap.Push(&q, c)
		}
	}
	for q.Len() > 0 {
		c := heap.Pop(&q).(mergeCandidate)
		if !alive[c.left] || !alive[c.right] || next[c.left] != c.right ||
			ids[c.left] != c.leftID || ids[c.right] != c.rightID {
			continue // stale: one side has merged since this was queued
		}
		ids[c.left] = c.merged
		alive[c.right] = false
		nr := next[c.right]
		next[c.left] = nr
		if nr >= 0 {
			prev[nr] = c.left
		}
		push(prev[c.left], c.left)
		push(c.left, nr)
	}
	out := ids[:0]
	for i := 0; i >= 0; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}

// shortWord is the length up to which mergeShort is faster than the heap.
const shortWord = 12

// mergeShort is mergeSymbols by rescanning all pairs after each merge.
func mergeShort(ids []int, frozen []bool, rule pairRule) []int {
	var fz [shortWord]bool
	if frozen != nil {
		copy(fz[:], frozen)
	}
	n := len(ids)
	for {
		best, bestP, bestID := -1, 0.0, 0
		for i := 0; i+1 < n; i++ {
			if fz[i] || fz[i+1] {
				continue
			}
			if m, p, ok := rule(ids[i], ids[i+1]); ok && (best < 0 || p < bestP) {
				best, bestP, bestID = i, p, m
			}
		}
		if best < 0 {
			return ids[:n]
		}
		ids[best] = bestID
		copy(ids[best+1:n], ids[best+2:n])
		copy(fz[best+1:n], fz[best+2:n])
		n--
	}
}
