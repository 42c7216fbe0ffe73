package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/imece/imece/kernels"
	"github.com/imece/imece/pipeline/llama"
	"github.com/imece/imece/pipeline/model"
)

// Server defaults, each overridable by a ServerOption.
const (
	DefaultMaxSessions = 16
	DefaultIdleTimeout = 5 * time.Minute
	DefaultKVBudget    = 2 << 30
	openTimeout        = 20 * time.Second
	dialTimeout        = 15 * time.Second
	writeTimeout       = 60 * time.Second
)

type serverConfig struct {
	maxSessions int
	idle        time.Duration
	kvBudget    int64
	maxLen      int
	log         *slog.Logger
	wrap        func(network.StreamHandler) network.StreamHandler
	billing     Billing
	fault       *Fault
	observers   *Observers
	// Audits: the rows kept for clients that audit their sessions, and the
	// recomputations run at once for clients auditing other stages.
	evidenceBudget int64
	evidenceKeep   time.Duration
	auditSlots     int
}

// ServerOption configures a StageServer.
type ServerOption func(*serverConfig) error

// WithMaxSessions bounds the sessions served at once; more get CodeBusy.
func WithMaxSessions(n int) ServerOption {
	return func(c *serverConfig) error {
		if n <= 0 {
			return fmt.Errorf("max sessions %d must be positive", n)
		}
		c.maxSessions = n
		return nil
	}
}

// WithIdleTimeout drops a session whose upstream sends nothing for d.
func WithIdleTimeout(d time.Duration) ServerOption {
	return func(c *serverConfig) error {
		if d <= 0 {
			return fmt.Errorf("idle timeout %v must be positive", d)
		}
		c.idle = d
		return nil
	}
}

// WithKVBudget bounds the bytes of KV cache all sessions together may reserve.
func WithKVBudget(bytes int64) ServerOption {
	return func(c *serverConfig) error {
		if bytes <= 0 {
			return fmt.Errorf("KV budget %d must be positive", bytes)
		}
		c.kvBudget = bytes
		return nil
	}
}

// WithMaxSessionLen bounds the positions one session may ask for (default: the
// model's training context, or 4096 when the model does not say).
func WithMaxSessionLen(n int) ServerOption {
	return func(c *serverConfig) error {
		if n <= 0 {
			return fmt.Errorf("max session length %d must be positive", n)
		}
		c.maxLen = n
		return nil
	}
}

// WithServerLogger sets the logger.
func WithServerLogger(l *slog.Logger) ServerOption {
	return func(c *serverConfig) error { c.log = l; return nil }
}

// WithBilling charges clients through b: sessions are admitted only if the
// client can pay, and every session's work is settled in receipts.
func WithBilling(b Billing) ServerOption {
	return func(c *serverConfig) error { c.billing = b; return nil }
}

// WithStreamGuard wraps the stream handler, e.g. with node.DirectOnly so that no
// activation ever travels through a relay.
func WithStreamGuard(wrap func(network.StreamHandler) network.StreamHandler) ServerOption {
	return func(c *serverConfig) error { c.wrap = wrap; return nil }
}

// StageServer serves a range of a model's layers over StageProtocol: it opens a
// session per incoming Open, opens the rest of the chain, computes every Forward
// and hands the activations on (or the logits back). Clients may ask for any
// sub-range of what it serves.
type StageServer struct {
	h           host.Host
	m           *model.Model
	weights     *model.Model // what the stage computes with: m, unless a Fault says otherwise
	model       cid.Cid
	be          kernels.Backend
	first, last int
	cfg         serverConfig

	mu       sync.Mutex
	stages   map[LayerRange]*llama.Stage
	sessions map[*stageSession]struct{}
	lastByID map[SessionID]*stageSession  // sessions this server ends, for Attach
	byKey    map[sessionKey]*stageSession // open sessions, for settlement
	kvUsed   int64
	served   int
	closed   bool
	wg       sync.WaitGroup

	evidence   *evidenceStore
	auditSlots chan struct{}
}

// NewStageServer prepares to serve layers [first, last) of m, whose CID is id, on
// h. Call Start to begin accepting sessions.
func NewStageServer(h host.Host, m *model.Model, id cid.Cid, be kernels.Backend, first, last int, opts ...ServerOption) (*StageServer, error) {
	cfg := serverConfig{maxSessions: DefaultMaxSessions, idle: DefaultIdleTimeout, kvBudget: DefaultKVBudget, log: slog.Default(),
		evidenceBudget: DefaultEvidenceBudget, evidenceKeep: DefaultEvidenceRetention, auditSlots: DefaultAuditSlots}
	cfg.maxLen = m.Config.ContextLength
	if cfg.maxLen <= 0 {
		cfg.maxLen = 4096
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if first < 0 || last > m.Config.Layers || first >= last {
		return nil, fmt.Errorf("%w: serve [%d, %d) of a %d-layer model", llama.ErrRange, first, last, m.Config.Layers)
	}
	cfg.billing = cfg.observers.observeBilling(cfg.billing)
	weights := m
	if f := cfg.fault; f != nil && f.Model != nil {
		if f.Model.Config != m.Config {
			return nil, fmt.Errorf("fault model's configuration differs from the model served")
		}
		weights = f.Model
	}
	s := &StageServer{
		h: h, m: m, weights: weights, model: id, be: be, first: first, last: last, cfg: cfg,
		stages:     map[LayerRange]*llama.Stage{},
		sessions:   map[*stageSession]struct{}{},
		lastByID:   map[SessionID]*stageSession{},
		byKey:      map[sessionKey]*stageSession{},
		evidence:   newEvidenceStore(cfg.evidenceBudget, cfg.evidenceKeep),
		auditSlots: make(chan struct{}, cfg.auditSlots),
	}
	if _, err := s.stage(LayerRange{first, last}); err != nil {
		return nil, err
	}
	return s, nil
}

// Start registers the stream handler.
func (s *StageServer) Start() {
	var h, audit network.StreamHandler = s.handle, s.serveAudit
	if s.cfg.wrap != nil {
		h, audit = s.cfg.wrap(h), s.cfg.wrap(audit)
	}
	audit = s.cfg.observers.observeAudits(audit)
	s.h.SetStreamHandler(StageProtocol, h)
	s.h.SetStreamHandler(AuditProtocol, audit)
	if s.cfg.billing != nil {
		s.h.SetStreamHandler(ReceiptProtocol, s.serveReceipt)
	}
}

// Layers is the range the server holds.
func (s *StageServer) Layers() LayerRange { return LayerRange{s.first, s.last} }

// Sessions is the number of sessions open now.
func (s *StageServer) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Served is how many sessions the server has admitted since it started.
func (s *StageServer) Served() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served
}

// FreeSlots is how many more sessions the server accepts now.
func (s *StageServer) FreeSlots() int { return max(0, s.cfg.maxSessions-s.Sessions()) }

// Close stops accepting sessions, fails the open ones with CodeClosing and waits
// for them to end.
func (s *StageServer) Close() error {
	s.h.RemoveStreamHandler(StageProtocol)
	s.h.RemoveStreamHandler(ReceiptProtocol)
	s.h.RemoveStreamHandler(AuditProtocol)
	s.mu.Lock()
	s.closed = true
	open := make([]*stageSession, 0, len(s.sessions))
	for se := range s.sessions {
		open = append(open, se)
	}
	s.mu.Unlock()
	for _, se := range open {
		se.fail(CodeClosing, se.hop, "", "the stage is shutting down")
	}
	s.wg.Wait()
	return nil
}

// stage returns the engine for a sub-range, built once and shared by sessions.
func (s *StageServer) stage(r LayerRange) (*llama.Stage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stages[r]; ok {
		return st, nil
	}
	st, err := llama.NewStage(s.weights, s.be, llama.WithLayers(r.First, r.Last))
	if err != nil {
		return nil, err
	}
	s.stages[r] = st
	return st, nil
}

// kvBytes is the KV cache a session of maxLen positions over r reserves.
func (s *StageServer) kvBytes(r LayerRange, maxLen int) int64 {
	c := s.m.Config
	return int64(r.Last-r.First) * int64(maxLen) * int64(2*c.KVHeads*c.HeadDim) * 4
}

// stageError is an error to report upstream as a frame.
type stageError struct {
	code ErrorCode
	msg  string
	// failedHop and peer name the hop at fault for CodeHopFailed.
	failedHop int
	peer      string
}

// hop is the hop to report: the failed one for CodeHopFailed, else this one.
func (e *stageError) hop(self int) int {
	if e.code == CodeHopFailed {
		return e.failedHop
	}
	return self
}

// Sentinels for session ends that send no error frame of their own.
var (
	errRelayed      = &stageError{msg: "error relayed from downstream"}
	errUpstreamGone = &stageError{msg: "upstream is gone"}
)

// hopFailed blames the next hop.
func (se *stageSession) hopFailed(format string, args ...any) *stageError {
	return &stageError{code: CodeHopFailed, msg: fmt.Sprintf(format, args...), failedHop: se.hop + 1, peer: string(se.downID)}
}

func (e *stageError) Error() string { return e.code.String() + ": " + e.msg }

func errf(code ErrorCode, format string, args ...any) *stageError {
	return &stageError{code: code, msg: fmt.Sprintf(format, args...)}
}

// admit checks an Open against what the server holds and its limits, and reserves
// the session's memory.
func (s *StageServer) admit(o *OpenFrame, se *stageSession) *stageError {
	c, err := cid.Cast(o.Model)
	if err != nil || !c.Equals(s.model) {
		return errf(CodeNoSuchModel, "this stage serves model %s", s.model)
	}
	if err := verifyTicket(o); err != nil {
		return errf(CodeBadRequest, "the session's ticket does not verify under the client key it names")
	}
	if o.First < s.first || o.Last > s.last {
		return errf(CodeRangeNotServed, "layers [%d, %d) asked, [%d, %d) served", o.First, o.Last, s.first, s.last)
	}
	if o.MaxLen <= 0 || o.MaxLen > s.cfg.maxLen {
		return errf(CodeBadRequest, "session length %d outside (0, %d]", o.MaxLen, s.cfg.maxLen)
	}
	if o.DType != ActF32 && o.DType != ActF16 {
		return errf(CodeBadRequest, "activation dtype %d", o.DType)
	}
	next := o.Last
	for _, t := range o.Tail {
		if t.First != next {
			return errf(CodeBadRequest, "route tail does not continue at layer %d", next)
		}
		next = t.Last
	}
	if next != s.m.Config.Layers {
		return errf(CodeBadRequest, "route ends at layer %d of %d", next, s.m.Config.Layers)
	}
	if s.cfg.billing != nil {
		if err := s.cfg.billing.Admit(o.Client, s.model, o.First, o.Last, o.MaxLen); err != nil {
			return errf(CodePaymentRequired, "%v", err)
		}
	}
	kv := s.kvBytes(LayerRange{o.First, o.Last}, o.MaxLen)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errf(CodeClosing, "the stage is shutting down")
	case len(s.sessions) >= s.cfg.maxSessions:
		return errf(CodeBusy, "%d sessions open", len(s.sessions))
	case s.kvUsed+kv > s.cfg.kvBudget:
		return errf(CodeBusy, "KV cache budget exhausted")
	}
	s.kvUsed += kv
	s.served++
	se.kv = kv
	s.sessions[se] = struct{}{}
	s.byKey[sessionKey{o.Session, o.Hop}] = se
	s.wg.Add(1)
	return nil
}

func (s *StageServer) release(se *stageSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[se]; !ok {
		return
	}
	delete(s.sessions, se)
	if s.byKey[sessionKey{se.id, se.hop}] == se {
		delete(s.byKey, sessionKey{se.id, se.hop})
	}
	if s.lastByID[se.id] == se {
		delete(s.lastByID, se.id)
	}
	s.kvUsed -= se.kv
	s.evidence.end(se.ev)
	s.wg.Done()
}

// sessionKey finds a session by ID and hop: a peer may serve two hops of one
// chain.
type sessionKey struct {
	id  SessionID
	hop int
}

// stageSession is one session through this stage: the upstream stream, the
// downstream one if the stage is not the last, and the engine session.
type stageSession struct {
	srv  *StageServer
	id   SessionID
	hop  int
	kv   int64
	log  *slog.Logger
	last bool

	up     network.Stream
	upR    *FrameReader
	upMu   sync.Mutex // guards upW, res and resW: results and relayed frames come from two goroutines
	upW    *FrameWriter
	res    network.Stream // the client's Attach stream, where results go when present
	resW   *FrameWriter
	down   network.Stream
	downW  *FrameWriter
	downID peer.ID

	eng    *llama.Session
	dtype  ActivationDType
	ev     *evidence // the rows received, kept for audits; nil on the first stage
	x      []float32 // first stage: embedded rows
	logits []float32
	top    topK
	// Frames reused for every token, so serving a token allocates nothing.
	fwdOut ForwardFrame
	resOut ResultFrame

	client   [32]byte
	settleMu sync.Mutex // closing a window and proposing its receipt are one step
	usageMu  sync.Mutex
	usage    Usage       // the open settlement window: who, what, where it starts
	forwards []forwarded // the window's forwards, so it can close at any of them
	// processed is the engine's Pos, kept here for the settling goroutine.
	processed int

	failOnce  sync.Once
	ended     chan struct{}
	relayDone chan struct{} // closed when the relay goroutine ends; nil without one
}

// handle serves one incoming session stream.
func (s *StageServer) handle(up network.Stream) {
	se := &stageSession{
		srv: s, up: up, ended: make(chan struct{}),
		upR: NewFrameReader(up, MaxOpenFrameLen), upW: NewFrameWriter(up),
	}
	defer close(se.ended)
	up.SetDeadline(time.Now().Add(openTimeout))
	f, err := se.upR.ReadFrame()
	if err != nil {
		s.cfg.log.Debug("stage stream without an open frame", "peer", up.Conn().RemotePeer(), "err", err)
		se.reject(CodeBadRequest, 0, fmt.Sprintf("reading the open frame: %v", err))
		return
	}
	if a, ok := f.(*AttachFrame); ok {
		s.attach(up, se.upW, a)
		return
	}
	o, ok := f.(*OpenFrame)
	if !ok {
		se.reject(CodeBadRequest, 0, fmt.Sprintf("first frame is %s, not open", f.Type()))
		return
	}
	se.id, se.hop, se.client = o.Session, o.Hop, o.Client
	se.log = s.cfg.log.With("session", se.id.String()[:8], "hop", se.hop)
	if e := s.admit(o, se); e != nil {
		se.log.Info("session refused", "peer", up.Conn().RemotePeer(), "code", e.code, "reason", e.msg)
		se.reject(e.code, o.Hop, e.msg)
		return
	}
	defer s.release(se)
	defer se.settleOnEnd()
	// The connection manager must not trim a connection a session runs on.
	cm := s.h.ConnManager()
	tag := "imece/session/" + se.id.String()
	cm.Protect(up.Conn().RemotePeer(), tag)
	defer cm.Unprotect(up.Conn().RemotePeer(), tag)
	if e := se.open(o); e != nil {
		if e == errRelayed {
			se.relayed()
			return
		}
		se.fail(e.code, e.hop(o.Hop), e.peer, e.msg)
		return
	}
	defer func() {
		if se.relayDone != nil {
			<-se.relayDone
		}
	}()
	if se.last {
		s.mu.Lock()
		if _, dup := s.lastByID[se.id]; !dup {
			s.lastByID[se.id] = se
		}
		s.mu.Unlock()
	}
	se.log.Debug("session open", "layers", LayerRange{o.First, o.Last}, "max_len", o.MaxLen, "downstream", se.downID)
	se.serve(o)
}

// attach makes stream the destination of a session's results, until the session
// ends.
func (s *StageServer) attach(stream network.Stream, w *FrameWriter, a *AttachFrame) {
	s.mu.Lock()
	se := s.lastByID[a.Session]
	s.mu.Unlock()
	refuse := func(code ErrorCode, msg string) {
		stream.SetWriteDeadline(time.Now().Add(5 * time.Second))
		w.WriteFrame(&ErrorFrame{Session: a.Session, Code: code, Message: msg})
		stream.Close()
	}
	if se == nil {
		refuse(CodeNoSuchSession, "no session ends here with that ID")
		return
	}
	se.upMu.Lock()
	if se.res != nil {
		se.upMu.Unlock()
		refuse(CodeBadRequest, "session already attached")
		return
	}
	stream.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := w.WriteFrame(&ReadyFrame{Session: a.Session}); err != nil {
		se.upMu.Unlock()
		stream.Reset()
		return
	}
	se.res, se.resW = stream, w
	se.upMu.Unlock()
	<-se.ended
	stream.Close()
}

// reject answers a stream that never became a session, then closes it.
func (se *stageSession) reject(code ErrorCode, hop int, msg string) {
	se.up.SetWriteDeadline(time.Now().Add(5 * time.Second))
	se.upW.WriteFrame(&ErrorFrame{Session: se.id, Code: code, Hop: hop, Message: msg})
	se.up.Close()
}

// open builds the engine session and opens the rest of the chain.
func (se *stageSession) open(o *OpenFrame) *stageError {
	s := se.srv
	st, err := s.stage(LayerRange{o.First, o.Last})
	if err != nil {
		return errf(CodeInternal, "%v", err)
	}
	eng, err := st.NewSession(o.MaxLen)
	if err != nil {
		return errf(CodeBadRequest, "%v", err)
	}
	se.eng = eng
	se.dtype = o.DType
	se.usage = Usage{Client: o.Client, Session: o.Session, Model: s.model, First: o.First, Last: o.Last}
	se.last = len(o.Tail) == 0
	c := s.m.Config
	if st.IsFirst() {
		se.upR.SetMax(ForwardFrameLen(o.MaxLen, 0, o.DType))
	} else {
		se.upR.SetMax(ForwardFrameLen(o.MaxLen, c.Dim, o.DType))
		// The client knows the tokens it sent the first stage; every other
		// stage keeps what it received, for audits of it and of the hop before.
		se.ev = s.evidence.open(sessionKey{o.Session, o.Hop}, o.Client, o.DType, c.Dim, o.MaxLen)
	}
	if se.last {
		se.logits = make([]float32, c.VocabSize)
		return nil
	}
	return se.openDownstream(o)
}

// openDownstream dials the next hop of the route, opens the session there and
// waits for the rest of the chain to be ready.
func (se *stageSession) openDownstream(o *OpenFrame) *stageError {
	next := o.Tail[0]
	pid := peer.ID(next.Peer)
	if pid.Validate() != nil {
		return errf(CodeBadRequest, "route names an invalid peer")
	}
	se.downID = pid
	hopFailed := se.hopFailed
	info := peer.AddrInfo{ID: pid}
	for _, b := range next.Addrs {
		if a, err := ma.NewMultiaddrBytes(b); err == nil {
			info.Addrs = append(info.Addrs, a)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	h := se.srv.h
	if len(info.Addrs) > 0 {
		h.Peerstore().AddAddrs(pid, info.Addrs, 10*time.Minute)
	}
	if err := h.Connect(ctx, info); err != nil {
		return se.downFailed(hopFailed("dial hop %d: %v", o.Hop+1, err))
	}
	down, err := h.NewStream(ctx, pid, StageProtocol)
	if err != nil {
		return se.downFailed(hopFailed("open stream to hop %d: %v", o.Hop+1, err))
	}
	se.down, se.downW = down, NewFrameWriter(down)
	tag := "imece/session/" + se.id.String()
	h.ConnManager().Protect(pid, tag)
	go func() {
		<-se.ended
		h.ConnManager().Unprotect(pid, tag)
	}()
	down.SetDeadline(time.Now().Add(openTimeout))
	err = se.downW.WriteFrame(&OpenFrame{
		Session: o.Session, Model: o.Model, Hop: o.Hop + 1,
		First: next.First, Last: next.Last, MaxLen: o.MaxLen, DType: o.DType,
		Client: o.Client, Ticket: o.Ticket, Tail: o.Tail[1:],
	})
	if err != nil {
		return se.downFailed(hopFailed("send open to hop %d: %v", o.Hop+1, err))
	}
	r := NewFrameReader(down, max(MaxErrorFrameLen, ResultFrameLen(se.srv.m.Config.VocabSize)))
	f, err := r.ReadFrame()
	if err != nil {
		return se.downFailed(hopFailed("hop %d did not answer: %v", o.Hop+1, err))
	}
	switch f := f.(type) {
	case *ReadyFrame:
	case *ErrorFrame:
		// An error from further down is relayed as it is, naming its own hop.
		se.relayUp(f)
		return errRelayed
	default:
		return se.downFailed(hopFailed("hop %d answered %s", o.Hop+1, f.Type()))
	}
	down.SetDeadline(time.Time{})
	se.relayDone = make(chan struct{})
	go func() {
		defer close(se.relayDone)
		se.relay(r)
	}()
	return nil
}

func (se *stageSession) downFailed(e *stageError) *stageError {
	if se.down != nil {
		se.down.Reset()
	}
	return e
}

// serve answers Ready, then computes every Forward until the session ends.
func (se *stageSession) serve(o *OpenFrame) {
	se.upMu.Lock()
	se.up.SetWriteDeadline(time.Now().Add(writeTimeout))
	err := se.upW.WriteFrame(&ReadyFrame{Session: se.id})
	se.upMu.Unlock()
	if err != nil {
		se.abort()
		return
	}
	for {
		se.up.SetReadDeadline(time.Now().Add(se.srv.cfg.idle))
		f, err := se.upR.ReadFrame()
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				se.end()
			case errors.Is(err, ErrBadFrame), errors.Is(err, ErrFrameTooLarge):
				se.fail(CodeBadRequest, se.hop, "", err.Error())
			case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
				se.fail(CodeClosing, se.hop, "", "idle timeout")
			default:
				se.abort()
			}
			return
		}
		switch f := f.(type) {
		case *ForwardFrame:
			if e := se.observedForward(f); e != nil {
				if e == errUpstreamGone {
					se.abort()
				} else {
					se.fail(e.code, e.hop(se.hop), e.peer, e.msg)
				}
				return
			}
		case *CloseFrame:
			se.end()
			return
		default:
			se.fail(CodeBadRequest, se.hop, "", fmt.Sprintf("unexpected %s frame", f.Type()))
			return
		}
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// forward computes one Forward frame and passes the result on.
func (se *stageSession) forward(f *ForwardFrame) *stageError {
	if f.Session != se.id {
		return errf(CodeNoSuchSession, "frame for session %s", f.Session)
	}
	st := se.eng.Stage()
	if f.Pos != se.eng.Pos() {
		return errf(CodeOutOfOrder, "forward at position %d, session is at %d", f.Pos, se.eng.Pos())
	}
	n := f.Rows()
	if n == 0 {
		return errf(CodeBadRequest, "empty forward")
	}
	if f.Pos+n > se.eng.MaxLen() {
		return errf(CodeContextFull, "%d positions + %d > %d", f.Pos, n, se.eng.MaxLen())
	}
	var x []float32
	if st.IsFirst() {
		if f.Kind != KindTokens {
			return errf(CodeBadRequest, "the first stage takes tokens, got %s", f.Kind)
		}
		d := st.Config().Dim
		if cap(se.x) < n*d {
			se.x = make([]float32, n*d)
		}
		x = se.x[:n*d]
		if err := se.eng.Embed(x, f.Tokens); err != nil {
			return errf(CodeBadRequest, "%v", err)
		}
	} else {
		if f.Kind != KindActivations || f.Width != st.Config().Dim || f.DType != se.dtype {
			return errf(CodeBadRequest, "want %s activations of width %d, got %s %s of width %d",
				se.dtype, st.Config().Dim, f.DType, f.Kind, f.Width)
		}
		x = f.Acts
		se.srv.evidence.add(se.ev, f.Pos, x)
	}
	if err := se.eng.Forward(x); err != nil {
		return errf(CodeBadRequest, "%v", err)
	}
	if ft := se.srv.cfg.fault; ft != nil && ft.Corrupt != nil {
		ft.Corrupt(x, f.Pos)
	}
	se.usageMu.Lock()
	se.processed = f.Pos + n
	if !f.NoResult { // positions alone need no entry: the window's To counts them
		se.forwards = append(se.forwards, forwarded{end: f.Pos + n, token: true})
	}
	se.usageMu.Unlock()
	if se.last {
		if f.NoResult {
			return nil
		}
		if err := se.eng.Logits(se.logits, x); err != nil {
			return errf(CodeInternal, "%v", err)
		}
		res := &se.resOut
		*res = ResultFrame{Session: se.id, Pos: f.Pos + n - 1, Vocab: len(se.logits), Logits: se.logits}
		if f.TopK > 0 && f.TopK < len(se.logits) {
			res.IDs, res.Logits = se.top.of(se.logits, f.TopK)
		}
		se.upMu.Lock()
		defer se.upMu.Unlock()
		st, w := se.up, se.upW
		if se.res != nil {
			st, w = se.res, se.resW
		}
		st.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := w.WriteFrame(res); err != nil {
			return errUpstreamGone
		}
		return nil
	}
	se.down.SetWriteDeadline(time.Now().Add(writeTimeout))
	out := &se.fwdOut
	*out = ForwardFrame{
		Session: se.id, Pos: f.Pos, NoResult: f.NoResult, Kind: KindActivations,
		Acts: x, Width: st.Config().Dim, DType: se.dtype, TopK: f.TopK,
	}
	err := se.downW.WriteFrame(out)
	if err != nil {
		return se.hopFailed("send to hop %d (%s): %v", se.hop+1, se.downID, err)
	}
	return nil
}

// relay passes frames from downstream (results, errors) upstream until the
// downstream stream ends. A downstream that dies without saying why is reported as
// CodeHopFailed naming it, so the client can plan around exactly that peer.
func (se *stageSession) relay(r *FrameReader) {
	for {
		f, err := r.ReadFrame()
		if err != nil {
			select {
			case <-se.ended:
				return
			default:
			}
			se.fail(CodeHopFailed, se.hop+1, string(se.downID), fmt.Sprintf("hop %d (%s) stopped: %v", se.hop+1, se.downID, err))
			return
		}
		switch f := f.(type) {
		case *ResultFrame:
			se.upMu.Lock()
			se.up.SetWriteDeadline(time.Now().Add(writeTimeout))
			err = se.upW.WriteFrame(f)
			se.upMu.Unlock()
			if err != nil {
				se.abort()
				return
			}
		case *ErrorFrame:
			se.relayUp(f)
			se.relayed()
			return
		default:
			se.fail(CodeHopFailed, se.hop+1, string(se.downID), fmt.Sprintf("hop %d sent %s", se.hop+1, f.Type()))
			return
		}
	}
}

func (se *stageSession) relayUp(f *ErrorFrame) {
	se.upMu.Lock()
	defer se.upMu.Unlock()
	se.up.SetWriteDeadline(time.Now().Add(5 * time.Second))
	se.upW.WriteFrame(f)
}

// fail ends the session abnormally, telling upstream why, and resets downstream.
func (se *stageSession) fail(code ErrorCode, hop int, failedPeer, msg string) {
	se.failOnce.Do(func() {
		if se.log != nil {
			se.log.Info("session failed", "code", code, "failed_hop", hop, "reason", msg)
		}
		se.upMu.Lock()
		se.up.SetWriteDeadline(time.Now().Add(5 * time.Second))
		se.upW.WriteFrame(&ErrorFrame{Session: se.id, Code: code, Hop: hop, Peer: failedPeer, Message: msg})
		se.upMu.Unlock()
		se.finish(false)
	})
}

// relayed ends the session after an error from further down was passed upstream.
func (se *stageSession) relayed() { se.failOnce.Do(func() { se.finish(false) }) }

// abort ends the session when upstream is gone: there is nobody to tell.
func (se *stageSession) abort() {
	se.failOnce.Do(func() {
		se.up.Reset()
		se.closeResults(false)
		if se.down != nil {
			se.down.Reset()
		}
	})
}

// closeResults ends the Attach stream, if any, so a client waiting on it learns
// at once that the session is over.
func (se *stageSession) closeResults(clean bool) {
	se.upMu.Lock()
	defer se.upMu.Unlock()
	if se.res == nil {
		return
	}
	if clean {
		se.res.Close()
	} else {
		se.res.Reset()
	}
}

// finish closes upstream gracefully (so a frame just written still arrives) and
// downstream either gracefully or not.
func (se *stageSession) finish(clean bool) {
	se.up.Close()
	se.closeResults(clean)
	if se.down == nil {
		return
	}
	if clean {
		se.down.Close()
	} else {
		se.down.Reset()
	}
}

// end closes the session cleanly: Close goes on down the chain.
func (se *stageSession) end() {
	se.failOnce.Do(func() {
		if se.down != nil {
			se.down.SetWriteDeadline(time.Now().Add(5 * time.Second))
			se.downW.WriteFrame(&CloseFrame{Session: se.id})
		}
		se.finish(true)
	})
}
