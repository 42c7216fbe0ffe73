package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/imece/imece/pipeline/verify"
)

// The stage's side of AuditProtocol: it keeps, for a while, the rows each
// session sent it (its evidence), hands them to that session's client, and
// re-executes hops of other stages for clients that audit them. The client's
// side is Auditor (auditor.go); the design and the calibration of the
// comparison are in verify/doc.go.

// Audit bounds. The evidence budget and retention are ServerOptions; the rest
// bound what any peer can make a stage compute or send.
const (
	// DefaultEvidenceBudget bounds the bytes of rows a stage keeps for audits,
	// over all its sessions, open and ended.
	DefaultEvidenceBudget = 256 << 20
	// DefaultEvidenceRetention is how long a stage keeps a session's rows after
	// the session ended: the client audits after the work.
	DefaultEvidenceRetention = 2 * time.Minute
	// MaxAuditRows bounds the positions an audit covers: the rows a stage keeps
	// per session, hands out at once, and re-executes for an auditor. Positions
	// past it are never audited.
	MaxAuditRows = 1024
	// DefaultAuditSlots bounds the recomputations a stage runs at once; more
	// are refused with CodeBusy.
	DefaultAuditSlots = 2
	// auditTimeout bounds one audit exchange, request to answer.
	auditTimeout = 30 * time.Second
	// maxAuditAnswerLen bounds what a client reads as an answer before looking
	// at it (Evidence of MaxAuditRows rows of 16384 f32 values).
	maxAuditAnswerLen = 64 << 20
)

// ErrNoEvidence means a stage holds no rows for the hop and positions asked:
// the session is unknown, expired, or was not retained (the budget was
// spent), or the positions are past what it kept.
var ErrNoEvidence = errors.New("pipeline: no evidence retained")

// WithEvidence sets the bytes of rows a stage keeps for audits (0 keeps none)
// and how long it keeps a session's rows after the session ended.
func WithEvidence(budget int64, retention time.Duration) ServerOption {
	return func(c *serverConfig) error {
		if budget < 0 || retention <= 0 {
			return fmt.Errorf("evidence budget %d and retention %v", budget, retention)
		}
		c.evidenceBudget, c.evidenceKeep = budget, retention
		return nil
	}
}

// WithAuditSlots bounds the audits a stage recomputes at once.
func WithAuditSlots(n int) ServerOption {
	return func(c *serverConfig) error {
		if n < 1 {
			return fmt.Errorf("audit slots %d must be positive", n)
		}
		c.auditSlots = n
		return nil
	}
}

// evidenceStore keeps the rows sessions sent a stage, bounded in bytes and in
// time: rows are reserved when a session opens and dropped once it has been
// over for longer than keep, or sooner when a new session needs the room.
type evidenceStore struct {
	mu      sync.Mutex
	budget  int64
	keep    time.Duration
	now     func() time.Time
	used    int64
	entries map[sessionKey]*evidence
}

// evidence is one session's rows at one hop: positions [0, len(rows)/width).
type evidence struct {
	client [32]byte
	dtype  ActivationDType
	width  int
	limit  int // rows kept at most
	rows   []float32
	bytes  int64
	ended  time.Time // zero while the session is open
}

func newEvidenceStore(budget int64, keep time.Duration) *evidenceStore {
	return &evidenceStore{budget: budget, keep: keep, now: time.Now, entries: map[sessionKey]*evidence{}}
}

// open reserves room for a session's first rows; nil when there is none, and
// the session then goes unaudited at this stage.
func (s *evidenceStore) open(k sessionKey, client [32]byte, dt ActivationDType, width, maxLen int) *evidence {
	limit := min(maxLen, MaxAuditRows)
	e := &evidence{client: client, dtype: dt, width: width, limit: limit, bytes: int64(limit) * int64(width) * 4}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	if old, ok := s.entries[k]; ok {
		s.drop(k, old)
	}
	for s.used+e.bytes > s.budget {
		// Make room from the sessions that ended longest ago.
		var oldest sessionKey
		var oe *evidence
		for k, x := range s.entries {
			if !x.ended.IsZero() && (oe == nil || x.ended.Before(oe.ended)) {
				oldest, oe = k, x
			}
		}
		if oe == nil {
			return nil
		}
		s.drop(oldest, oe)
	}
	s.used += e.bytes
	s.entries[k] = e
	return e
}

func (s *evidenceStore) drop(k sessionKey, e *evidence) {
	delete(s.entries, k)
	s.used -= e.bytes
}

// expire drops the sessions over for longer than keep. Called with mu held.
func (s *evidenceStore) expire() {
	now := s.now()
	for k, e := range s.entries {
		if !e.ended.IsZero() && now.Sub(e.ended) > s.keep {
			s.drop(k, e)
		}
	}
}

// add keeps rows received at pos, as long as they continue the rows kept.
func (s *evidenceStore) add(e *evidence, pos int, rows []float32) {
	if e == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	have := len(e.rows) / e.width
	if pos != have || have >= e.limit {
		return
	}
	n := min(len(rows)/e.width, e.limit-have)
	if e.rows == nil {
		e.rows = make([]float32, 0, e.limit*e.width)
	}
	e.rows = append(e.rows, rows[:n*e.width]...)
}

// end starts the session's retention period.
func (s *evidenceStore) end(e *evidence) {
	if e == nil {
		return
	}
	s.mu.Lock()
	e.ended = s.now()
	s.mu.Unlock()
}

// get returns rows [from, to) of a session's hop to its client.
func (s *evidenceStore) get(k sessionKey, client []byte, from, to int) (*Evidence, *AuditError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	e, ok := s.entries[k]
	if !ok {
		return nil, &AuditError{Code: CodeNoSuchSession, Message: ErrNoEvidence.Error() + " for that session and hop"}
	}
	if !bytes.Equal(client, e.client[:]) {
		// The same answer as for an unknown session: a stranger learns nothing.
		return nil, &AuditError{Code: CodeNoSuchSession, Message: ErrNoEvidence.Error() + " for that session and hop"}
	}
	have := len(e.rows) / e.width
	if to > have || to-from > MaxAuditRows {
		return nil, &AuditError{Code: CodeBadRequest, Message: fmt.Sprintf("%v: rows [%d, %d) asked, [0, %d) kept", ErrNoEvidence, from, to, have)}
	}
	return &Evidence{Session: k.id, Hop: k.hop, From: from, DType: e.dtype, Width: e.width,
		Rows: slices.Clone(e.rows[from*e.width : to*e.width])}, nil
}

// auditRows is the most positions this stage audits or keeps per session.
func (s *StageServer) auditRows() int { return min(s.cfg.maxLen, MaxAuditRows) }

// serveAudit answers one AuditProtocol request.
func (s *StageServer) serveAudit(st network.Stream) {
	defer st.Close()
	st.SetDeadline(time.Now().Add(auditTimeout))
	limit := RecomputeRequestLen(s.auditRows(), s.m.Config.Dim, ActF32)
	req, err := ReadAudit(st, limit)
	var ans AuditMessage
	switch req := req.(type) {
	case nil:
		ans = &AuditError{Code: CodeBadRequest, Message: fmt.Sprintf("reading the request: %v", err)}
	case *EvidenceRequest:
		ans = s.evidenceFor(st, req)
	case *RecomputeRequest:
		ans = s.recompute(req)
	default:
		ans = &AuditError{Code: CodeBadRequest, Message: fmt.Sprintf("%s is not a request", req.AuditType())}
	}
	if e, ok := ans.(*AuditError); ok {
		s.cfg.log.Debug("audit refused", "peer", st.Conn().RemotePeer(), "code", e.Code, "reason", e.Message)
	}
	if err := WriteAudit(st, ans); err != nil {
		st.Reset()
	}
}

// evidenceFor hands a session's rows to the client that opened it, whom the
// stream's key must be.
func (s *StageServer) evidenceFor(st network.Stream, req *EvidenceRequest) AuditMessage {
	var client []byte
	if pk := st.Conn().RemotePublicKey(); pk != nil {
		client, _ = pk.Raw()
	}
	ev, e := s.evidence.get(sessionKey{req.Session, req.Hop}, client, req.From, req.To)
	if e != nil {
		return e
	}
	return ev
}

// recompute re-executes a hop for an auditing client, in a fresh session, and
// fingerprints the result.
func (s *StageServer) recompute(req *RecomputeRequest) AuditMessage {
	refuse := func(code ErrorCode, format string, args ...any) AuditMessage {
		return &AuditError{Code: code, Message: fmt.Sprintf(format, args...)}
	}
	c := s.m.Config
	n := req.Rows()
	if id, err := cid.Cast(req.Model); err != nil || !id.Equals(s.model) {
		return refuse(CodeNoSuchModel, "this stage serves model %s", s.model)
	}
	switch {
	case req.First < s.first || req.Last > s.last:
		return refuse(CodeRangeNotServed, "layers [%d, %d) asked, [%d, %d) served", req.First, req.Last, s.first, s.last)
	case n > s.auditRows():
		return refuse(CodeBadRequest, "%d positions exceed %d", n, s.auditRows())
	case req.Tokens == nil && req.Width != c.Dim:
		return refuse(CodeBadRequest, "rows of width %d, the model's is %d", req.Width, c.Dim)
	case req.Witness != nil && (req.Width != c.Dim || req.Last == c.Layers):
		return refuse(CodeBadRequest, "witness rows of width %d for layers [%d, %d)", req.Width, req.First, req.Last)
	}
	select {
	case s.auditSlots <- struct{}{}:
		defer func() { <-s.auditSlots }()
	default:
		return refuse(CodeBusy, "%d audits running", cap(s.auditSlots))
	}
	r := LayerRange{req.First, req.Last}
	kv := s.kvBytes(r, n)
	s.mu.Lock()
	if s.closed || s.kvUsed+kv > s.cfg.kvBudget {
		s.mu.Unlock()
		return refuse(CodeBusy, "KV cache budget exhausted")
	}
	s.kvUsed += kv
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.kvUsed -= kv
		s.mu.Unlock()
	}()
	st, err := s.stage(r)
	if err != nil {
		return refuse(CodeInternal, "%v", err)
	}
	eng, err := st.NewSession(n)
	if err != nil {
		return refuse(CodeBadRequest, "%v", err)
	}
	d := c.Dim
	in := req.Inputs
	if req.Tokens != nil {
		in = make([]float32, n*d)
		if err := eng.Embed(in, req.Tokens); err != nil {
			return refuse(CodeBadRequest, "%v", err)
		}
	}
	x := slices.Clone(in)
	if err := eng.Forward(x); err != nil {
		return refuse(CodeBadRequest, "%v", err)
	}
	if f := s.cfg.fault; f != nil && f.Corrupt != nil {
		f.Corrupt(x, 0)
	}
	out := &Recomputed{}
	if st.IsLast() {
		logits := make([]float32, c.VocabSize)
		var top topK
		for _, p := range req.Checks {
			if err := eng.Logits(logits, x[:(p+1)*d]); err != nil {
				return refuse(CodeInternal, "%v", err)
			}
			ids, vals := top.of(logits, min(verify.TopK, c.VocabSize))
			out.Logits = append(out.Logits, verify.Logits{IDs: slices.Clone(ids), Vals: slices.Clone(vals)})
		}
		return out
	}
	pr, err := verify.NewPrinter(req.Seed, d)
	if err != nil {
		return refuse(CodeInternal, "%v", err)
	}
	for i, p := range req.Checks {
		row := func(v []float32) []float32 { return v[p*d : (p+1)*d] }
		fp, err := pr.Hidden(row(x), row(in))
		if err != nil {
			return refuse(CodeInternal, "%v", err)
		}
		out.Hidden = append(out.Hidden, fp)
		if req.Witness != nil {
			w, err := pr.Hidden(req.Witness[i*d:(i+1)*d], row(in))
			if err != nil {
				return refuse(CodeInternal, "%v", err)
			}
			out.Witness = append(out.Witness, w)
		}
	}
	return out
}
