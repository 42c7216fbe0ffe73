package pipeline

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/imece/imece/pipeline/verify"
)

// Auditor defaults, each overridable by an AuditorOption.
const (
	// DefaultAuditRate is the share of hops audited: one in ten.
	DefaultAuditRate = 0.1
	// DefaultAuditChecks is how many positions of an audited hop are compared.
	DefaultAuditChecks = 8
	// DefaultAuditQueue bounds the sessions waiting for their audits; a client
	// that generates faster than it audits skips audits rather than piling up.
	DefaultAuditQueue = 64
	// DefaultAuditTimeout bounds the audits of one session.
	DefaultAuditTimeout = 2 * time.Minute
	// auditVotes is how many auditors at most judge one hop: a failure needs
	// two to agree, and a third breaks a tie.
	auditVotes = 3
	// auditAttempts bounds the auditors tried per hop, unreachable ones included.
	auditAttempts = 6
)

// Sentinel errors of the Auditor.
var (
	// ErrAuditorClosed: the Auditor was closed.
	ErrAuditorClosed = errors.New("pipeline: auditor closed")
	// ErrNoAuditor: no peer other than the audited one serves the hop's layers.
	ErrNoAuditor = errors.New("pipeline: no independent auditor serves the hop's layers")
)

type auditorConfig struct {
	rate    float64
	rateFor func(peer.ID) float64
	checks  int
	sink    func(verify.Result)
	queue   int
	timeout time.Duration
	log     *slog.Logger
}

// AuditorOption configures an Auditor.
type AuditorOption func(*auditorConfig) error

// WithAuditRate sets the share p of hops audited, each drawn independently
// after the session, so that no stage can know which of its hops will be
// checked. 0 audits nothing but canaries; 1 audits every hop.
func WithAuditRate(p float64) AuditorOption {
	return func(c *auditorConfig) error {
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("audit rate %v outside [0, 1]", p)
		}
		c.rate = p
		return nil
	}
}

// WithAuditRateFor raises the share of a peer's hops audited to f(peer) when
// that is above the base rate: a node whose hardware claim is in quarantine,
// or that failed before, earns its standing back under closer watch.
func WithAuditRateFor(f func(peer.ID) float64) AuditorOption {
	return func(c *auditorConfig) error {
		c.rateFor = f
		return nil
	}
}

// WithAuditChecks sets how many positions of an audited hop are compared: more
// catch a rare fault sooner, at the cost of bigger answers.
func WithAuditChecks(n int) AuditorOption {
	return func(c *auditorConfig) error {
		if n < 1 || n > MaxAuditRows {
			return fmt.Errorf("audit checks %d outside [1, %d]", n, MaxAuditRows)
		}
		c.checks = n
		return nil
	}
}

// WithAuditSink receives every result, for the node to sign into its ledger
// (node.Ledger.RecordAudit). It is called from the Auditor's goroutines, one
// at a time.
func WithAuditSink(f func(verify.Result)) AuditorOption {
	return func(c *auditorConfig) error { c.sink = f; return nil }
}

// WithAuditQueue bounds the sessions waiting for audits.
func WithAuditQueue(n int) AuditorOption {
	return func(c *auditorConfig) error {
		if n < 1 {
			return fmt.Errorf("audit queue %d must be positive", n)
		}
		c.queue = n
		return nil
	}
}

// WithAuditTimeout bounds the audits of one session, every exchange included.
func WithAuditTimeout(d time.Duration) AuditorOption {
	return func(c *auditorConfig) error {
		if d <= 0 {
			return fmt.Errorf("audit timeout %v must be positive", d)
		}
		c.timeout = d
		return nil
	}
}

// WithAuditorLogger sets the logger.
func WithAuditorLogger(l *slog.Logger) AuditorOption {
	return func(c *auditorConfig) error { c.log = l; return nil }
}

// Auditor checks, after the work, a sampled share of the hops of the sessions
// a client ran (Remote hands them over with WithAuditor): it fetches the rows
// each audited stage received and sent from the stages themselves, has
// independent peers serving the same layers re-execute the hop, compares
// fingerprints, and yields a verify.Result per judged hop to the sink. One
// goroutine audits the queued sessions in order; Close stops it.
type Auditor struct {
	h   host.Host
	cfg auditorConfig

	ctx    context.Context
	cancel context.CancelFunc
	queue  chan *auditedSession
	done   chan struct{}

	mu      sync.Mutex
	closed  bool
	pending sync.WaitGroup
	rnd     *rand.Rand // guarded by mu
}

// NewAuditor starts an Auditor for the client on h.
func NewAuditor(h host.Host, opts ...AuditorOption) (*Auditor, error) {
	cfg := auditorConfig{rate: DefaultAuditRate, checks: DefaultAuditChecks, queue: DefaultAuditQueue,
		timeout: DefaultAuditTimeout, log: slog.Default()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Auditor{h: h, cfg: cfg, ctx: ctx, cancel: cancel,
		queue: make(chan *auditedSession, cfg.queue), done: make(chan struct{}),
		rnd: rand.New(rand.NewChaCha8(seed))}
	go a.run()
	return a, nil
}

// Close drops the sessions not yet audited, stops the audit under way and
// waits for it.
func (a *Auditor) Close() error {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.queue)
	}
	a.mu.Unlock()
	a.cancel()
	<-a.done
	return nil
}

// Wait returns when every session handed over so far has been audited, or
// when ctx ends.
func (a *Auditor) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		a.pending.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// auditedSession is what a client keeps of a session to audit it afterwards.
type auditedSession struct {
	model   cid.Cid
	id      SessionID
	route   []Hop
	addrs   map[string][]ma.Multiaddr
	peers   PeerSource
	dtype   ActivationDType
	vocab   int
	tokens  []int32         // the token at every position, in order
	results []auditedResult // the logits the client got, by increasing position
	// canary, when set, is the outcome of a canary session: see RunCanary.
	canary *canaryOutcome
}

// auditedResult is what the client kept of the logits after one position.
type auditedResult struct {
	pos int
	top verify.Logits
}

// submit queues a session for audit; a full queue drops it.
func (a *Auditor) submit(s *auditedSession) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrAuditorClosed
	}
	a.pending.Add(1)
	select {
	case a.queue <- s:
		return nil
	default:
		a.pending.Done()
		a.cfg.log.Warn("audit queue full, session not audited", "session", s.id.String()[:8])
		return nil
	}
}

func (a *Auditor) run() {
	defer close(a.done)
	for s := range a.queue {
		if a.ctx.Err() == nil {
			ctx, cancel := context.WithTimeout(a.ctx, a.cfg.timeout)
			a.auditSession(ctx, s)
			cancel()
		}
		a.pending.Done()
	}
}

// draw returns a uniform float in [0, 1) from the Auditor's unpredictable
// source.
func (a *Auditor) draw() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rnd.Float64()
}

func (a *Auditor) seed() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rnd.Uint64()
}

func (a *Auditor) perm(n int) []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rnd.Perm(n)
}

// rate is the share of p's hops audited: the base rate, or more (never
// beyond 1) where WithAuditRateFor says so.
func (a *Auditor) rate(p peer.ID) float64 {
	r := a.cfg.rate
	if a.cfg.rateFor != nil {
		if q := a.cfg.rateFor(p); q > r {
			r = min(q, 1)
		}
	}
	return r
}

// emit hands a result to the sink.
func (a *Auditor) emit(r verify.Result) {
	if a.cfg.sink != nil {
		a.cfg.sink(r)
	}
}

// auditSession audits the sampled hops of one session (every hop of a canary
// that diverged) and gives a canary's verdicts (see RunCanary).
func (a *Auditor) auditSession(ctx context.Context, s *auditedSession) {
	ev := &evidenceCache{rows: map[int]*Evidence{}}
	diverged := s.canary != nil && s.canary.diverged >= 0
	for h := range s.route {
		if peer.ID(s.route[h].Peer) == a.h.ID() {
			// A node never judges itself: its ledger refuses such a record.
			continue
		}
		if s.canary != nil && !diverged {
			a.emitCanary(s, h, verify.Pass)
		}
		if !diverged && a.draw() >= a.rate(peer.ID(s.route[h].Peer)) {
			continue
		}
		v, res, err := a.auditHop(ctx, s, h, ev)
		log := a.cfg.log.With("session", s.id.String()[:8], "hop", h, "peer", peer.ID(s.route[h].Peer))
		if err != nil {
			log.Info("hop not audited", "err", err)
		} else {
			log.Debug("hop audited", "verdict", v.Verdict, "median", v.Median, "worst", v.Worst.Value, "part", v.Worst.Part)
			a.emit(res)
		}
		if diverged && (err != nil || res.Verdict != verify.Pass) {
			// Not cleared by an audit: the chain's failure is this hop's.
			a.emitCanary(s, h, verify.Fail)
		}
	}
}

// evidenceCache holds the rows fetched for one session, by hop: each stage's
// rows serve the audit of its own hop (inputs) and of the hop before (outputs).
type evidenceCache struct {
	rows map[int]*Evidence
}

// PeerKey is the Ed25519 key inside an Ed25519 peer ID: the wallet (ledger
// key) of the peer, which receipts and audit results name.
func PeerKey(p peer.ID) ([32]byte, error) {
	var k [32]byte
	pk, err := p.ExtractPublicKey()
	if err != nil {
		return k, fmt.Errorf("peer %s: %w", p, err)
	}
	raw, err := pk.Raw()
	if err != nil || len(raw) != len(k) {
		return k, fmt.Errorf("peer %s has no Ed25519 key", p)
	}
	copy(k[:], raw)
	return k, nil
}

// auditHop judges hop h of s: the rows it received and sent, re-executed by up
// to auditVotes independent auditors.
func (a *Auditor) auditHop(ctx context.Context, s *auditedSession, h int, ev *evidenceCache) (verify.Judgement, verify.Result, error) {
	var j verify.Judgement
	hop := s.route[h]
	subject := peer.ID(hop.Peer)
	key, err := PeerKey(subject)
	if err != nil {
		return j, verify.Result{}, err
	}
	last := h == len(s.route)-1
	n := min(len(s.tokens), MaxAuditRows)
	// The positions to check: any position for a hop inside the model, one the
	// client got logits for after the last.
	var cands []int
	if last {
		for _, r := range s.results {
			if r.pos < n {
				cands = append(cands, r.pos)
			}
		}
	} else {
		for p := range n {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return j, verify.Result{}, errors.New("no position to check")
	}
	var checks []int
	for _, i := range a.perm(len(cands))[:min(a.cfg.checks, len(cands))] {
		checks = append(checks, cands[i])
	}
	slices.Sort(checks)
	rows := checks[len(checks)-1] + 1

	req := &RecomputeRequest{Session: s.id, Hop: h, Seed: a.seed(), Model: s.model.Bytes(),
		First: hop.First, Last: hop.Last, DType: s.dtype, Checks: checks}
	var in *Evidence
	if h == 0 {
		req.Tokens = slices.Clone(s.tokens[:rows])
	} else {
		if in, err = a.evidence(ctx, s, h, rows, ev); err != nil {
			return j, verify.Result{}, fmt.Errorf("inputs of hop %d: %w", h, err)
		}
		req.Inputs, req.Width = in.Rows[:rows*in.Width], in.Width
	}
	// What the hop sent: the next stage's rows, or the logits the client got.
	var mine []verify.Fingerprint
	var got []verify.Logits
	var dim int
	if last {
		for _, p := range checks {
			i, _ := slices.BinarySearchFunc(s.results, p, func(r auditedResult, p int) int { return r.pos - p })
			got = append(got, s.results[i].top)
		}
	} else {
		out, err := a.evidence(ctx, s, h+1, rows, ev)
		if err != nil {
			return j, verify.Result{}, fmt.Errorf("outputs of hop %d: %w", h, err)
		}
		dim = out.Width
		if in != nil && in.Width != dim {
			return j, verify.Result{}, fmt.Errorf("hops %d and %d kept rows of widths %d and %d", h, h+1, in.Width, dim)
		}
		if h == 0 {
			// Only an auditor knows the embeddings the hop's contribution is
			// measured from: it fingerprints the rows sent too.
			req.Width = dim
			for _, p := range checks {
				req.Witness = append(req.Witness, out.Rows[p*dim:(p+1)*dim]...)
			}
		} else {
			pr, err := verify.NewPrinter(req.Seed, dim)
			if err != nil {
				return j, verify.Result{}, err
			}
			for _, p := range checks {
				fp, err := pr.Hidden(out.Rows[p*dim:(p+1)*dim], in.Rows[p*dim:(p+1)*dim])
				if err != nil {
					return j, verify.Result{}, err
				}
				mine = append(mine, fp)
			}
		}
	}
	quantum := verify.QuantumF32
	if s.dtype == ActF16 {
		quantum = verify.QuantumF16
	}
	judge := func(ans *Recomputed) (verify.Judgement, error) {
		tl := verify.Tally{Logits: last}
		for i, p := range checks {
			var sc verify.Score
			switch {
			case last:
				if len(ans.Logits) != len(checks) {
					return verify.Judgement{}, fmt.Errorf("%w: %d logit lists for %d checks", verify.ErrFingerprint, len(ans.Logits), len(checks))
				}
				if err := ans.Logits[i].Validate(s.vocab); err != nil {
					return verify.Judgement{}, err
				}
				sc = verify.CompareLogits(ans.Logits[i], got[i])
			default:
				if len(ans.Hidden) != len(checks) || (h == 0 && len(ans.Witness) != len(checks)) {
					return verify.Judgement{}, fmt.Errorf("%w: %d fingerprints, %d of witnesses, for %d checks",
						verify.ErrFingerprint, len(ans.Hidden), len(ans.Witness), len(checks))
				}
				theirs := ans.Hidden[i]
				sent := mine
				if h == 0 {
					sent = ans.Witness
					if err := sent[i].Validate(dim); err != nil {
						return verify.Judgement{}, err
					}
				}
				if err := theirs.Validate(dim); err != nil {
					return verify.Judgement{}, err
				}
				sc = verify.CompareHidden(theirs, sent[i], quantum)
			}
			tl.Add(uint32(p), sc)
		}
		return tl.Judge(), nil
	}
	j, err = a.vote(ctx, s, h, req, judge)
	if err != nil {
		return j, verify.Result{}, err
	}
	return j, verify.Result{Subject: key, Session: s.id, Hop: uint16(h), Model: s.model.Bytes(),
		First: uint16(hop.First), Last: uint16(hop.Last), Position: j.Position,
		Check: verify.CheckRecompute, Verdict: j.Verdict}, nil
}

// vote asks auditors in turn until the verdict is settled: a pass from the
// first stands, a failure needs a second to agree, and a third breaks a tie.
// An auditor that cannot be reached, refuses, or answers garbage is skipped.
func (a *Auditor) vote(ctx context.Context, s *auditedSession, h int, req *RecomputeRequest,
	judge func(*Recomputed) (verify.Judgement, error)) (verify.Judgement, error) {
	auditors, err := a.auditors(ctx, s, h)
	if err != nil {
		return verify.Judgement{}, err
	}
	var pass, fail []verify.Judgement
	var passBy, failBy []peer.ID
	var errs []error
	for i, p := range auditors {
		if i >= auditAttempts || len(pass)+len(fail) >= auditVotes {
			break
		}
		ans, err := a.exchange(ctx, p, req, RecomputedLen(len(req.Checks), verify.MaxDim))
		var rec *Recomputed
		if err == nil {
			var ok bool
			if rec, ok = ans.(*Recomputed); !ok {
				err = fmt.Errorf("auditor answered %s", ans.AuditType())
			}
		}
		var j verify.Judgement
		if err == nil {
			j, err = judge(rec)
		}
		if err != nil {
			a.cfg.log.Debug("auditor skipped", "auditor", p.ID, "err", err)
			errs = append(errs, fmt.Errorf("auditor %s: %w", shortID(p.ID), err))
			continue
		}
		if j.Verdict == verify.Pass {
			pass, passBy = append(pass, j), append(passBy, p.ID)
		} else {
			fail, failBy = append(fail, j), append(failBy, p.ID)
		}
		switch {
		case len(pass) > len(fail):
			if len(fail) > 0 {
				// An auditor whose recomputation two others contradict is
				// broken or lying; the ledger has no record for that yet.
				a.cfg.log.Warn("auditor outvoted", "session", s.id.String()[:8], "hop", h, "auditor", failBy[0])
			}
			return pass[0], nil
		case len(fail) >= 2 && len(fail) > len(pass):
			if len(pass) > 0 {
				a.cfg.log.Warn("auditor outvoted", "session", s.id.String()[:8], "hop", h, "auditor", passBy[0])
			}
			return fail[0], nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return verify.Judgement{}, fmt.Errorf("verdict unsettled (%d pass, %d fail): %w", len(pass), len(fail),
		errors.Join(append(errs, ErrNoAuditor)...))
}

// auditors lists the peers that can re-execute hop h: serving its layers, not
// its stage; peers outside the chain first (they saw none of the session),
// each group in random order, so no stage can predict who checks it.
func (a *Auditor) auditors(ctx context.Context, s *auditedSession, h int) ([]peer.AddrInfo, error) {
	if s.peers == nil {
		return nil, ErrNoAuditor
	}
	list, err := s.peers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	hop := s.route[h]
	inChain := func(p string) bool {
		return slices.ContainsFunc(s.route, func(x Hop) bool { return x.Peer == p })
	}
	var outside, inside []peer.AddrInfo
	seen := map[string]bool{}
	for _, i := range a.perm(len(list)) {
		c := list[i]
		if c.Peer == hop.Peer || seen[c.Peer] || c.First > hop.First || c.Last < hop.Last {
			continue
		}
		seen[c.Peer] = true
		info := peer.AddrInfo{ID: peer.ID(c.Peer), Addrs: c.Addrs}
		if inChain(c.Peer) {
			inside = append(inside, info)
		} else {
			outside = append(outside, info)
		}
	}
	if len(outside)+len(inside) == 0 {
		return nil, ErrNoAuditor
	}
	return append(outside, inside...), nil
}

// evidence fetches the rows stage h of s received at positions [0, rows),
// once per session.
func (a *Auditor) evidence(ctx context.Context, s *auditedSession, h, rows int, c *evidenceCache) (*Evidence, error) {
	if e, ok := c.rows[h]; ok && len(e.Rows)/e.Width >= rows {
		return e, nil
	}
	p := peer.AddrInfo{ID: peer.ID(s.route[h].Peer), Addrs: s.addrs[s.route[h].Peer]}
	// Ask for every position the session could audit, so the hop before and
	// after reuse the answer.
	want := min(len(s.tokens), MaxAuditRows)
	ans, err := a.exchange(ctx, p, &EvidenceRequest{Session: s.id, Hop: h, From: 0, To: want}, maxAuditAnswerLen)
	if err != nil {
		return nil, err
	}
	e, ok := ans.(*Evidence)
	switch {
	case !ok:
		return nil, fmt.Errorf("stage answered %s", ans.AuditType())
	case e.Session != s.id || e.Hop != h || e.From != 0 || len(e.Rows)/e.Width != want:
		return nil, fmt.Errorf("%w: evidence of hop %d from %d, %d rows, asked hop %d [0, %d)",
			ErrBadFrame, e.Hop, e.From, len(e.Rows)/e.Width, h, want)
	case e.Width > verify.MaxDim:
		return nil, fmt.Errorf("%w: rows of width %d", ErrBadFrame, e.Width)
	case e.DType != s.dtype:
		return nil, fmt.Errorf("%w: evidence in %s, the session ran %s", ErrBadFrame, e.DType, s.dtype)
	}
	c.rows[h] = e
	return e, nil
}

// exchange sends one request to p and reads its answer, at most limit bytes,
// within ctx and auditTimeout. A refusal comes back as an *AuditError.
func (a *Auditor) exchange(ctx context.Context, p peer.AddrInfo, req AuditMessage, limit int) (AuditMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, auditTimeout)
	defer cancel()
	if len(p.Addrs) > 0 {
		a.h.Peerstore().AddAddrs(p.ID, p.Addrs, 10*time.Minute)
	}
	st, err := a.h.NewStream(ctx, p.ID, AuditProtocol)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	deadline, _ := ctx.Deadline()
	st.SetDeadline(deadline)
	// A cancelled context must end a read in progress at once.
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	if err := WriteAudit(st, req); err != nil {
		st.Reset()
		return nil, err
	}
	if err := st.CloseWrite(); err != nil {
		st.Reset()
		return nil, err
	}
	ans, err := ReadAudit(st, limit)
	if err != nil {
		st.Reset()
		return nil, err
	}
	if e, ok := ans.(*AuditError); ok {
		return nil, e
	}
	return ans, nil
}

// WithAuditor hands every session the Remote ran, when it closes, to a for
// audit: the Remote then keeps the top logits of each result (and asks the
// last stage for at least verify.TopK of them, a few hundred bytes more per
// token, so the last hop can be checked however the client samples).
func WithAuditor(a *Auditor) RemoteOption {
	return func(c *remoteConfig) error { c.auditor = a; return nil }
}

// auditTopK is the top-k to ask results for, given the sampler's k (0: all).
func (r *Remote) auditTopK(k int) int {
	if r.cfg.auditor != nil && k > 0 {
		return max(k, verify.TopK)
	}
	return k
}

// keepResult keeps the top logits of a result for the Auditor, sorted, at
// most verify.TopK of them and MaxAuditRows results per session.
func (c *chainConn) keepResult(f *ResultFrame, logits []float32) {
	if !c.audit || len(c.results) >= MaxAuditRows {
		return
	}
	var t topK
	ids, vals := t.of(logits, min(verify.TopK, len(logits)))
	if f.IDs != nil {
		// Only what the stage sent counts: -Inf fills the rest.
		ids, vals = ids[:min(len(ids), len(f.IDs))], vals[:min(len(vals), len(f.IDs))]
	}
	c.results = append(c.results, auditedResult{pos: f.Pos,
		top: verify.Logits{IDs: slices.Clone(ids), Vals: slices.Clone(vals)}})
}

// handOver gives the open chain's session to the Auditor, if any.
func (r *Remote) handOver() {
	a, c := r.cfg.auditor, r.chain
	if a == nil || c == nil || c.pos == 0 {
		return
	}
	s := &auditedSession{model: r.model, id: c.id, route: slices.Clone(c.route), addrs: c.addrs,
		peers: r.peers, dtype: r.cfg.dtype, vocab: r.vocab, results: c.results, canary: r.canary}
	for _, b := range r.history {
		s.tokens = append(s.tokens, b...)
	}
	if len(s.tokens) != c.pos {
		// Forwards that failed after being sent leave positions the history
		// does not hold: the stages saw inputs the client cannot name.
		r.cfg.log.Debug("session not audited: history incomplete", "positions", c.pos, "history", len(s.tokens))
		return
	}
	if err := a.submit(s); err != nil {
		r.cfg.log.Debug("session not audited", "err", err)
	}
}
