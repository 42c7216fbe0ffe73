package tokenizer

import "math"

// symbol is a run of input bytes in a merge session, linked to its neighbours; a
// merged-away symbol has n == 0.
type symbol struct {
	prev, next int
	start, n   int
}

type spmBigram struct {
	left, right int
	score       float32
	size        int
}

// spmSession is llama.cpp's llm_tokenizer_spm_session: repeatedly merge the
// adjacent pair whose concatenation is the highest-scoring token (leftmost on
// ties), then emit each symbol as its token or, failing that, as byte tokens.
type spmSession struct {
	syms []symbol
	q    queue[spmBigram]
}

func (s *spmSession) tokenize(t *Tokenizer, text string, out []int32) []int32 {
	if text == "" {
		return out
	}
	s.syms = s.syms[:0]
	if s.q.before == nil {
		s.q.before = func(a, b *spmBigram) bool {
			return a.score > b.score || (a.score == b.score && a.left < b.left)
		}
	}
	s.q.reset()
	for off := 0; off < len(text); {
		n := min(utf8Len(text[off]), len(text)-off)
		i := len(s.syms)
		next := i + 1
		if off+n == len(text) {
			next = -1
		}
		s.syms = append(s.syms, symbol{prev: i - 1, next: next, start: off, n: n})
		off += n
	}
	for i := 1; i < len(s.syms); i++ {
		s.tryAdd(t, text, i-1, i)
	}
	for s.q.len() > 0 {
		b := s.q.pop()
		l, r := &s.syms[b.left], &s.syms[b.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			s.syms[r.next].prev = b.left
		}
		s.tryAdd(t, text, l.prev, b.left)
		s.tryAdd(t, text, b.left, l.next)
	}
	for i := 0; i != -1; i = s.syms[i].next {
		sym := s.syms[i]
		piece := text[sym.start : sym.start+sym.n]
		if id, ok := t.ids[piece]; ok {
			out = append(out, id)
			continue
		}
		// Not a token: only unmerged single characters get here, so llama.cpp's
		// rev_merge lookup never applies and the bytes fall back to byte tokens.
		for j := 0; j < len(piece); j++ {
			if id := t.byteToks[piece[j]]; id >= 0 {
				out = append(out, id)
			}
		}
	}
	return out
}

func (s *spmSession) tryAdd(t *Tokenizer, text string, left, right int) {
	if left == -1 || right == -1 {
		return
	}
	l := s.syms[left]
	size := l.n + s.syms[right].n
	id, ok := t.ids[text[l.start:l.start+size]]
	if !ok {
		return
	}
	score := t.scores[id]
	if math.IsInf(float64(score), -1) { // a token merges can never form (HF vocabularies)
		return
	}
	s.q.push(spmBigram{left: left, right: right, score: score, size: size})
}
