package pipeline

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// HopError is a session failure located in the chain: which hop, which peer, and
// why. The client re-plans around Peer when the failure is the peer's.
type HopError struct {
	Hop     int
	Peer    peer.ID
	Code    ErrorCode
	Message string
}

func (e *HopError) Error() string {
	return fmt.Sprintf("hop %d (%s): %s: %s", e.Hop, shortID(e.Peer), e.Code, e.Message)
}

// ErrPaymentRequired means a stage refused the session because the client
// cannot pay for it (insufficient credits) or left one of its receipts
// unsigned; the HopError's message says which. Callers such as the HTTP API
// test for it with errors.Is, to answer 402 rather than a generic failure.
var ErrPaymentRequired = errors.New("payment required")

// Is makes errors.Is(err, ErrPaymentRequired) hold for a stage's
// CodePaymentRequired refusal.
func (e *HopError) Is(target error) bool {
	return target == ErrPaymentRequired && e.Code == CodePaymentRequired
}

// retryable reports whether another chain may succeed where this one failed: the
// peer died, is busy or leaving, or no longer serves what its record said.
func (e *HopError) retryable() bool {
	switch e.Code {
	case CodeHopFailed, CodeBusy, CodeClosing, CodeInternal, CodeNoSuchModel, CodeRangeNotServed, CodeNoSuchSession:
		return true
	}
	return false
}

func shortID(p peer.ID) string {
	s := p.String()
	if len(s) > 12 {
		return "…" + s[len(s)-8:]
	}
	return s
}

// StagePeer is a peer that could serve part of a chain: the planner's view of it
// and where to dial it.
type StagePeer struct {
	Candidate
	Addrs []ma.Multiaddr
}

// chainConn is one session along a route, as the client holds it: a stream to the
// first stage, through which every frame of every hop comes back.
type chainConn struct {
	h     host.Host
	model cid.Cid
	addrs map[string][]ma.Multiaddr
	key   [32]byte
	// The open settlement window, as the client counts it, and the
	// settlements of earlier windows still running.
	window, winFrom, winTokens int
	settling                   sync.WaitGroup
	// winTime is the chain's time in the open window (Usage.Micros), and
	// sent when the Forwards awaiting a result began.
	winTime time.Duration
	sent    time.Time

	s     network.Stream
	r     *FrameReader
	w     *FrameWriter
	res   network.Stream // Attach stream to the last stage, nil when results come up the chain
	resR  *FrameReader
	id    SessionID
	route []Hop
	pos   int
	tok   ForwardFrame // reused for every Forward
	// audit keeps the logits of every result in results, for the Auditor.
	audit   bool
	results []auditedResult
}

// dialChain opens a session on every hop of route and waits until the whole chain
// answers Ready.
func dialChain(ctx context.Context, h host.Host, model cid.Cid, route []Hop, addrs map[string][]ma.Multiaddr, maxLen, vocab int, dt ActivationDType) (*chainConn, error) {
	c := &chainConn{route: route, h: h, model: model, addrs: addrs}
	if _, err := rand.Read(c.id[:]); err != nil {
		return nil, err
	}
	first := peer.ID(route[0].Peer)
	fail := func(err error) error {
		return &HopError{Hop: 0, Peer: first, Code: CodeHopFailed, Message: err.Error()}
	}
	if a := addrs[route[0].Peer]; len(a) > 0 {
		h.Peerstore().AddAddrs(first, a, 10*time.Minute)
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout+openTimeout)
	defer cancel()
	s, err := h.NewStream(dctx, first, StageProtocol)
	if err != nil {
		return nil, fail(err)
	}
	c.s, c.w = s, NewFrameWriter(s)
	c.r = NewFrameReader(s, max(MaxErrorFrameLen, ResultFrameLen(vocab)))
	tail := make([]RouteHop, 0, len(route)-1)
	for _, hop := range route[1:] {
		rh := RouteHop{Hop: hop}
		for _, a := range addrs[hop.Peer] {
			if len(rh.Addrs) < MaxHopAddrs {
				rh.Addrs = append(rh.Addrs, a.Bytes())
			}
		}
		tail = append(tail, rh)
	}
	deadline, _ := dctx.Deadline()
	s.SetDeadline(deadline)
	key, err := HostKey(h)
	if err != nil {
		s.Reset()
		return nil, err
	}
	open := &OpenFrame{
		Session: c.id, Model: model.Bytes(), Hop: 0, First: route[0].First, Last: route[0].Last,
		MaxLen: maxLen, DType: dt, Tail: tail,
	}
	signTicket(key, open)
	c.key = open.Client
	err = c.w.WriteFrame(open)
	if err != nil {
		s.Reset()
		return nil, fail(err)
	}
	f, err := c.r.ReadFrame()
	if err != nil {
		s.Reset()
		return nil, fail(fmt.Errorf("waiting for the chain: %w", err))
	}
	switch f := f.(type) {
	case *ReadyFrame:
		s.SetDeadline(time.Time{})
		if len(route) > 1 {
			c.attach(dctx, h, vocab)
		}
		return c, nil
	case *ErrorFrame:
		s.Reset()
		return nil, c.hopError(f)
	default:
		s.Reset()
		return nil, fail(fmt.Errorf("first stage answered %s", f.Type()))
	}
}

// attach opens a stream straight to the last stage for the results, saving them
// a trip back through every stage. Without it (the last stage unreachable from
// here, say) results still come up the chain.
func (c *chainConn) attach(ctx context.Context, h host.Host, vocab int) {
	last := peer.ID(c.route[len(c.route)-1].Peer)
	s, err := h.NewStream(ctx, last, StageProtocol)
	if err != nil {
		return
	}
	deadline, _ := ctx.Deadline()
	s.SetDeadline(deadline)
	r := NewFrameReader(s, max(MaxErrorFrameLen, ResultFrameLen(vocab)))
	if err := WriteFrame(s, &AttachFrame{Session: c.id}); err != nil {
		s.Reset()
		return
	}
	if f, err := r.ReadFrame(); err != nil || f.Type() != FrameTypeReady {
		s.Reset()
		return
	}
	s.SetDeadline(time.Time{})
	c.res, c.resR = s, r
}

// hopError turns an error frame into a HopError naming the peer at fault.
func (c *chainConn) hopError(f *ErrorFrame) *HopError {
	e := &HopError{Hop: f.Hop, Peer: peer.ID(f.Peer), Code: f.Code, Message: f.Message}
	if e.Peer == "" && f.Hop >= 0 && f.Hop < len(c.route) {
		e.Peer = peer.ID(c.route[f.Hop].Peer)
	}
	return e
}

// forward sends tokens at the session's next positions; unless noResult, it waits
// for the logits of the last one. With topK > 0 only the topK largest logits come
// back; the others are set to -Inf.
func (c *chainConn) forward(ctx context.Context, tokens []int32, noResult bool, topK int, logits []float32) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(writeTimeout)
	}
	c.s.SetDeadline(deadline)
	c.tok = ForwardFrame{Session: c.id, Pos: c.pos, NoResult: noResult, Kind: KindTokens, Tokens: tokens}
	if !noResult && topK > 0 && topK < len(logits) {
		c.tok.TopK = topK
	}
	if c.sent.IsZero() {
		c.sent = time.Now()
	}
	if err := c.w.WriteFrame(&c.tok); err != nil {
		return c.streamError(err)
	}
	c.pos += len(tokens)
	if noResult {
		return nil
	}
	// The token is owed from the moment the stages compute it, whether or not
	// its result comes back.
	c.winTokens++
	r := c.r
	if c.res != nil {
		c.res.SetDeadline(deadline)
		r = c.resR
	}
	for {
		f, err := r.ReadFrame()
		if err != nil {
			if r == c.resR {
				return c.resultsLost(err)
			}
			return c.streamError(err)
		}
		switch f := f.(type) {
		case *ResultFrame:
			if f.Pos != c.pos-1 {
				// A result for an earlier position cannot arrive (replays ask for
				// none); anything else is a broken stage.
				return &HopError{Hop: len(c.route) - 1, Peer: peer.ID(c.route[len(c.route)-1].Peer), Code: CodeHopFailed,
					Message: fmt.Sprintf("result for position %d, expected %d", f.Pos, c.pos-1)}
			}
			if f.Vocab != len(logits) || (f.IDs != nil && len(f.IDs) > max(c.tok.TopK, 0)) {
				return &HopError{Hop: len(c.route) - 1, Peer: peer.ID(c.route[len(c.route)-1].Peer), Code: CodeHopFailed,
					Message: fmt.Sprintf("%d logits of a vocabulary of %d, want %d (top %d)", len(f.Logits), f.Vocab, len(logits), c.tok.TopK)}
			}
			if f.IDs == nil {
				copy(logits, f.Logits)
			} else {
				scatter(logits, f.IDs, f.Logits)
			}
			c.keepResult(f, logits)
			return nil
		case *ErrorFrame:
			return c.hopError(f)
		default:
			return &HopError{Hop: 0, Peer: peer.ID(c.route[0].Peer), Code: CodeHopFailed, Message: fmt.Sprintf("unexpected %s frame", f.Type())}
		}
	}
}

// resultsLost explains a broken Attach stream: the session ended somewhere in
// the chain, and the error frame saying where comes up the main stream.
func (c *chainConn) resultsLost(err error) error {
	c.s.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		f, rerr := c.r.ReadFrame()
		if rerr != nil {
			break
		}
		if e, ok := f.(*ErrorFrame); ok {
			return c.hopError(e)
		}
	}
	last := len(c.route) - 1
	return &HopError{Hop: last, Peer: peer.ID(c.route[last].Peer), Code: CodeHopFailed, Message: "result stream: " + err.Error()}
}

// streamError blames the first hop for a broken stream to it: every other
// failure would have arrived as an error frame.
func (c *chainConn) streamError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return &HopError{Hop: 0, Peer: peer.ID(c.route[0].Peer), Code: CodeHopFailed, Message: "timed out: " + err.Error()}
	}
	return &HopError{Hop: 0, Peer: peer.ID(c.route[0].Peer), Code: CodeHopFailed, Message: err.Error()}
}

func (c *chainConn) close() {
	c.s.SetWriteDeadline(time.Now().Add(2 * time.Second))
	c.w.WriteFrame(&CloseFrame{Session: c.id})
	c.s.Close()
	if c.res != nil {
		c.res.Close()
	}
}

// settle settles the open window with every hop at once and starts the next
// window. A hop that cannot be settled (it died) is logged and skipped: its
// server keeps its proposal pending until this client countersigns it.
func (c *chainConn) settle(ctx context.Context, payer Payer, log *slog.Logger) {
	c.settleAsync(ctx, payer, log)
	c.settling.Wait()
}

// settleAsync closes the client's window now and settles it with every hop in
// the background, so generation goes on meanwhile: each stage closes its window
// at the position the client gives, whatever it computed since. A window waits
// for the one before to finish settling, so each stage sees them in order.
func (c *chainConn) settleAsync(ctx context.Context, payer Payer, log *slog.Logger) {
	if c.pos == c.winFrom {
		return
	}
	c.settling.Wait()
	window, from, to, tokens, took := c.window, c.winFrom, c.pos, c.winTokens, c.winTime
	c.window++
	c.winFrom, c.winTokens, c.winTime = c.pos, 0, 0
	for i, hop := range c.route {
		u := Usage{
			Client: c.key, Session: c.id, Window: window, Model: c.model,
			First: hop.First, Last: hop.Last, From: from, To: to, Tokens: tokens,
			Micros: took.Microseconds(), Hops: len(c.route),
		}
		if i == len(c.route)-1 {
			u.Results = tokens
		}
		c.settling.Go(func() {
			if a := c.addrs[hop.Peer]; len(a) > 0 {
				c.h.Peerstore().AddAddrs(peer.ID(hop.Peer), a, 10*time.Minute)
			}
			if err := settle(ctx, c.h, peer.ID(hop.Peer), payer, u, i); err != nil {
				log.Warn("receipt not settled", "hop", i, "peer", peer.ID(hop.Peer), "window", window, "err", err)
			}
		})
	}
}

// reset abandons the chain at once.
func (c *chainConn) reset() {
	c.s.Reset()
	if c.res != nil {
		c.res.Reset()
	}
}

// PeerSource lists the peers serving a model now, e.g. from the DHT coverage view.
type PeerSource func(ctx context.Context) ([]StagePeer, error)

// Remote runs a model through a chain of stages across the network, as a Runner.
// It plans the chain, opens it, and when a stage fails mid-generation re-plans
// around the failed peer and replays the sequence so far on the new chain in the
// same batches as before, so the KV caches it rebuilds are bit for bit the ones
// lost and the output is the same as an uninterrupted run's.
type Remote struct {
	h      host.Host
	model  cid.Cid
	layers int
	vocab  int
	maxLen int
	peers  PeerSource
	cfg    remoteConfig

	chain    *chainConn
	topK     int
	history  [][]int32 // batches sent, in order
	excluded []string
	failover int
	recovery []time.Duration
	canary   *canaryOutcome // set by RunCanary
}

type remoteConfig struct {
	payer       Payer
	settleEvery int
	observe     func([]Hop)
	retries     int
	chunk       int
	dtype       ActivationDType
	plan        []PlanOption
	log         *slog.Logger
	auditor     *Auditor
	observers   *Observers
}

// RemoteOption configures a Remote.
type RemoteOption func(*remoteConfig) error

// WithRetries bounds how many times one Forward re-plans after failures.
func WithRetries(n int) RemoteOption {
	return func(c *remoteConfig) error {
		if n < 0 {
			return fmt.Errorf("retries %d must not be negative", n)
		}
		c.retries = n
		return nil
	}
}

// WithPlanOptions passes options to the route planner.
func WithPlanOptions(opts ...PlanOption) RemoteOption {
	return func(c *remoteConfig) error { c.plan = append(c.plan, opts...); return nil }
}

// WithActivations chooses how activations travel between stages. F32 (the
// default) keeps a split model bit-identical to one process; F16 halves the bytes.
func WithActivations(dt ActivationDType) RemoteOption {
	return func(c *remoteConfig) error {
		if !dt.valid() {
			return fmt.Errorf("activation dtype %d", dt)
		}
		c.dtype = dt
		return nil
	}
}

// WithPayer makes the client settle every hop's work in receipts through p,
// every settleEvery generated tokens and when the session ends.
func WithPayer(p Payer, settleEvery int) RemoteOption {
	return func(c *remoteConfig) error {
		if settleEvery < 1 {
			return fmt.Errorf("settle every %d tokens", settleEvery)
		}
		c.payer, c.settleEvery = p, settleEvery
		return nil
	}
}

// WithRouteObserver calls f with every chain the client opens (the first and
// each after a failover), for display and tests.
func WithRouteObserver(f func([]Hop)) RemoteOption {
	return func(c *remoteConfig) error { c.observe = f; return nil }
}

// WithRemoteLogger sets the logger.
func WithRemoteLogger(l *slog.Logger) RemoteOption {
	return func(c *remoteConfig) error { c.log = l; return nil }
}

// OpenRemote plans a chain over the peers serving model (of layers layers and a
// vocabulary of vocab) and opens a session of maxLen positions on it.
func OpenRemote(ctx context.Context, h host.Host, model cid.Cid, layers, vocab, maxLen int, peers PeerSource, opts ...RemoteOption) (*Remote, error) {
	cfg := remoteConfig{retries: 4, chunk: 256, dtype: ActF32, log: slog.Default()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	cfg.payer = cfg.observers.observePayer(cfg.payer)
	r := &Remote{h: h, model: model, layers: layers, vocab: vocab, maxLen: maxLen, peers: peers, cfg: cfg}
	var err error
	for attempt := 0; attempt <= cfg.retries; attempt++ {
		if err = r.reopen(ctx); err == nil {
			return r, nil
		}
		if !r.recoverable(err) {
			break
		}
	}
	return nil, err
}

// Route is the chain in use.
func (r *Remote) Route() []Hop {
	if r.chain == nil {
		return nil
	}
	return slices.Clone(r.chain.route)
}

// Failovers is how many times the chain was re-planned after a failure, and
// Recoveries how long each took, from the failure to the chain being back where it
// was.
func (r *Remote) Failovers() int { return r.failover }

// Recoveries lists the duration of each failover.
func (r *Remote) Recoveries() []time.Duration { return slices.Clone(r.recovery) }

// recoverable notes the peer at fault and reports whether re-planning may help.
func (r *Remote) recoverable(err error) bool {
	var he *HopError
	if !errors.As(err, &he) || !he.retryable() {
		return false
	}
	if he.Peer != "" && !slices.Contains(r.excluded, string(he.Peer)) {
		r.excluded = append(r.excluded, string(he.Peer))
	}
	r.cfg.log.Warn("stage failed, re-planning", "hop", he.Hop, "peer", he.Peer, "code", he.Code, "reason", he.Message)
	return true
}

// reopen plans a chain without the excluded peers, opens it, and replays the
// sequence so far.
func (r *Remote) reopen(ctx context.Context) error {
	if r.chain != nil {
		r.abandon()
	}
	peers, err := r.peers(ctx)
	if err != nil {
		return fmt.Errorf("list peers: %w", err)
	}
	cands := make([]Candidate, 0, len(peers))
	addrs := make(map[string][]ma.Multiaddr, len(peers))
	for _, p := range peers {
		cands = append(cands, p.Candidate)
		addrs[p.Peer] = p.Addrs
	}
	route, err := Plan(cands, r.layers, append(slices.Clone(r.cfg.plan), WithoutPeers(r.excluded...))...)
	if err != nil {
		return err
	}
	c, err := dialChain(ctx, r.h, r.model, route, addrs, r.maxLen, r.vocab, r.cfg.dtype)
	if err != nil {
		return err
	}
	c.audit = r.cfg.auditor != nil
	for _, batch := range r.history {
		if err := c.forward(ctx, batch, true, 0, nil); err != nil {
			c.reset()
			return err
		}
	}
	r.chain = c
	if r.cfg.observe != nil {
		r.cfg.observe(slices.Clone(route))
	}
	r.cfg.log.Info("chain open", "hops", len(route), "route", FormatRoute(route), "replayed", c.pos)
	return nil
}

// abandon drops a failed chain, settling what the surviving stages did for it
// first: each of them proposes its last window when the session ends, and a
// proposal left unsigned would bar this client from that stage, which the next
// chain may well use. A dead stage cannot be settled; the wait for it is short.
func (r *Remote) abandon() {
	c := r.chain
	r.chain = nil
	c.reset()
	if r.cfg.payer == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), abandonSettleTimeout)
	defer cancel()
	c.settle(ctx, r.cfg.payer, r.cfg.log)
}

// abandonSettleTimeout bounds the settlement of a failed chain, which delays
// recovery by as much when a stage died without closing its connection.
const abandonSettleTimeout = 3 * time.Second

// FormatRoute writes a chain for people: short peer IDs and their layers.
func FormatRoute(route []Hop) string {
	s := ""
	for i, h := range route {
		if i > 0 {
			s += " → "
		}
		s += fmt.Sprintf("%s%v", shortID(peer.ID(h.Peer)), LayerRange{h.First, h.Last})
	}
	return s
}

// Forward implements Runner.
func (r *Remote) Forward(ctx context.Context, tokens []int32, logits []float32) error {
	if len(tokens) == 0 {
		return errors.New("forward of no tokens")
	}
	var failedAt time.Time
	for attempt := 0; ; attempt++ {
		var err error
		if r.chain == nil {
			err = r.reopen(ctx)
		}
		if err == nil {
			err = r.send(ctx, tokens, logits)
		}
		if err == nil {
			if !failedAt.IsZero() {
				r.recovery = append(r.recovery, time.Since(failedAt))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if r.chain != nil {
			r.abandon()
		}
		if failedAt.IsZero() {
			failedAt = time.Now()
			r.failover++
		}
		if attempt >= r.cfg.retries || !r.recoverable(err) {
			return err
		}
	}
}

// send forwards tokens in chunks of at most cfg.chunk rows and, once the chain
// has returned the logits, records the chunks in the history for replays.
func (r *Remote) send(ctx context.Context, tokens []int32, logits []float32) error {
	var batches [][]int32
	for off := 0; off < len(tokens); off += r.cfg.chunk {
		batches = append(batches, slices.Clone(tokens[off:min(off+r.cfg.chunk, len(tokens))]))
	}
	for i, b := range batches {
		if err := r.forwardBatch(ctx, b, i < len(batches)-1, logits); err != nil {
			return err
		}
	}
	r.history = append(r.history, batches...)
	if r.cfg.payer != nil && r.chain.winTokens >= r.cfg.settleEvery {
		// Settlement outlives this call: it must not end with ctx.
		r.chain.settleAsync(context.WithoutCancel(ctx), r.cfg.payer, r.cfg.log)
	}
	return nil
}

// SetTopK asks for only the k largest logits of each result (0: all of them),
// which is all a sampler keeping the top k needs: on every hop back the result
// shrinks from the vocabulary to k. Generate sets it from the sampling settings.
func (r *Remote) SetTopK(k int) { r.topK = r.auditTopK(max(k, 0)) }

// Close settles the last window and ends the session on every stage.
func (r *Remote) Close() error {
	if r.chain != nil {
		if r.cfg.payer != nil {
			ctx, cancel := context.WithTimeout(context.Background(), receiptTimeout)
			r.chain.settle(ctx, r.cfg.payer, r.cfg.log)
			cancel()
		}
		r.handOver()
		r.chain.close()
		r.chain = nil
	}
	return nil
}

var _ io.Closer = (*Remote)(nil)
