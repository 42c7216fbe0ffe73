package tokenizer

type bpeBigram struct {
	left, right int
	rank        int32
	text        string
}

// bpeSession is llama.cpp's llm_tokenizer_bpe_session: pre-tokenize, then within
// each piece repeatedly merge the adjacent pair with the lowest merge rank
// (leftmost on ties).
type bpeSession struct {
	sc   pieceScratch
	syms []symbol
	q    queue[bpeBigram]
	key  []byte
}

func (s *bpeSession) tokenize(t *Tokenizer, text string, out []int32) []int32 {
	if s.q.before == nil {
		s.q.before = func(a, b *bpeBigram) bool {
			return a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
		}
	}
	t.pretok.split(text, true, &s.sc, func(word string) {
		out = s.word(t, word, out)
	})
	return out
}

func (s *bpeSession) word(t *Tokenizer, word string, out []int32) []int32 {
	if t.ignoreMerges {
		if id, ok := t.ids[word]; ok {
			return append(out, id)
		}
	}
	s.syms = s.syms[:0]
	s.q.reset()
	for off := 0; off < len(word); {
		n := min(utf8Len(word[off]), len(word)-off)
		i := len(s.syms)
		next := i + 1
		if off+n == len(word) {
			next = -1
		}
		s.syms = append(s.syms, symbol{prev: i - 1, next: next, start: off, n: n})
		off += n
	}
	for i := 1; i < len(s.syms); i++ {
		s.tryAdd(t, word, i-1, i)
	}
	for s.q.len() > 0 {
		b := s.q.pop()
		l, r := &s.syms[b.left], &s.syms[b.right]
		if l.n == 0 || r.n == 0 {
			continue
		}
		if l.n+r.n != len(b.text) || word[l.start:l.start+l.n] != b.text[:l.n] || word[r.start:r.start+r.n] != b.text[l.n:] {
			continue // stale
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			s.syms[r.next].prev = b.left
		}
		s.tryAdd(t, word, l.prev, b.left)
		s.tryAdd(t, word, b.left, l.next)
	}
	for _, sym := range s.syms {
		if sym.n == 0 {
			continue
		}
		piece := word[sym.start : sym.start+sym.n]
		if id, ok := t.ids[piece]; ok {
			out = append(out, id)
			continue
		}
		// llama.cpp looks each raw byte of the byte-level text up as a token and
		// drops the bytes that are not one.
		for j := 0; j < len(piece); j++ {
			if id, ok := t.ids[piece[j:j+1]]; ok {
				out = append(out, id)
			}
		}
	}
	return out
}

func (s *bpeSession) tryAdd(t *Tokenizer, word string, left, right int) {
	if left == -1 || right == -1 {
		return
	}
	l, r := s.syms[left], s.syms[right]
	s.key = append(s.key[:0], word[l.start:l.start+l.n]...)
	s.key = append(s.key, 0)
	s.key = append(s.key, word[r.start:r.start+r.n]...)
	rank, ok := t.ranks[string(s.key)]
	if !ok {
		return
	}
	s.q.push(bpeBigram{left: left, right: right, rank: rank, text: word[l.start : r.start+r.n]})
}

// mergeKey is the ranks map key of a merge pair.
func mergeKey(a, b string) string { return a + "\x00" + b }
