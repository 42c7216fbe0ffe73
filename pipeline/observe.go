package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/imece/imece/pipeline/verify"
)

// Observer hears what a node's stage server and its client sessions do, so
// that metrics and dashboards can count work without the pipeline knowing
// about either (the model is net/http/httptrace.ClientTrace: a struct of
// optional hooks). Every field may be nil. Hooks run on the hot path of
// generation, from many goroutines at once: they must be safe for concurrent
// use, return at once and never block.
type Observer struct {
	// Forwarded is called after the stage server computed a Forward frame and
	// handed its output on (downstream, or the logits to the client).
	Forwarded func(ForwardEvent)
	// Token is called when a chain returned a result to this node as a client:
	// one generated token.
	Token func(TokenEvent)
	// Receipt is called when a receipt half this node signs, or asks for,
	// changes state.
	Receipt func(ReceiptEvent)
	// Audited is called with the verdict of every audit this node ran on
	// others' hops (canaries included).
	Audited func(verify.Result)
	// AuditServed is called when the stage server answered one audit stream
	// (another client's request to re-execute or show a hop).
	AuditServed func()
}

// ForwardEvent is one Forward frame a stage computed.
type ForwardEvent struct {
	Model  cid.Cid
	Layers LayerRange
	// Rows is the positions computed: the prompt's length for a prefill, 1
	// when decoding.
	Rows int
	// Token is set when the Forward asked for a result: it is one token of
	// the client's output (replays after a failover ask for none).
	Token bool
	// Took is from the frame's arrival to its output being handed on.
	Took time.Duration
}

// TokenEvent is one result a chain returned to this node as a client.
type TokenEvent struct {
	Model cid.Cid
	// Rows is the positions of the Forward that asked for it (the prompt's for
	// the first token), Hops the chain's length.
	Rows, Hops int
	// Took is from sending the Forward to receiving its result: the round trip
	// through every hop.
	Took time.Duration
}

// ReceiptRole says which half of a receipt this node signs.
type ReceiptRole string

// Receipt roles.
const (
	RoleServer ReceiptRole = "server" // this node proposes (earns)
	RoleClient ReceiptRole = "client" // this node agrees (spends)
)

// ReceiptState is where a receipt half stands after an event.
type ReceiptState string

// Receipt states. A server's receipt is Proposed when its half is on its
// chain, Settled when the client's countersignature was checked and stored;
// a client's is Settled when it countersigned. Refused means the other side's
// half did not check out (or the exchange failed): the receipt is void until
// it is settled again.
const (
	ReceiptProposed ReceiptState = "proposed"
	ReceiptSettled  ReceiptState = "settled"
	ReceiptRefused  ReceiptState = "refused"
)

// ReceiptEvent is a receipt half changing state.
type ReceiptEvent struct {
	Role  ReceiptRole
	State ReceiptState
	Usage Usage
}

// Observers is a set of Observers a node's stage server and clients report
// to. Observers can be added and removed while the node runs (a dashboard
// attached after start), at no cost to the hot path but an atomic load. The
// zero value is an empty set, ready to use; a nil *Observers is one too.
type Observers struct {
	mu   sync.Mutex
	list atomic.Pointer[[]*Observer]
}

// Add attaches o until the returned function is called.
func (s *Observers) Add(o *Observer) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next []*Observer
	if cur := s.list.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, o)
	s.list.Store(&next)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		cur := s.list.Load()
		if cur == nil {
			return
		}
		next := make([]*Observer, 0, len(*cur))
		for _, x := range *cur {
			if x != o {
				next = append(next, x)
			}
		}
		s.list.Store(&next)
	}
}

func (s *Observers) each(f func(*Observer)) {
	if s == nil {
		return
	}
	if l := s.list.Load(); l != nil {
		for _, o := range *l {
			f(o)
		}
	}
}

// Audited reports an audit verdict to every observer; the node calls it from
// its audit sink.
func (s *Observers) Audited(r verify.Result) {
	s.each(func(o *Observer) {
		if o.Audited != nil {
			o.Audited(r)
		}
	})
}

func (s *Observers) forwarded(e ForwardEvent) {
	s.each(func(o *Observer) {
		if o.Forwarded != nil {
			o.Forwarded(e)
		}
	})
}

func (s *Observers) token(e TokenEvent) {
	s.each(func(o *Observer) {
		if o.Token != nil {
			o.Token(e)
		}
	})
}

func (s *Observers) receipt(e ReceiptEvent) {
	s.each(func(o *Observer) {
		if o.Receipt != nil {
			o.Receipt(e)
		}
	})
}

func (s *Observers) auditServed() {
	s.each(func(o *Observer) {
		if o.AuditServed != nil {
			o.AuditServed()
		}
	})
}

// WithObservers makes the stage server report its work to s.
func WithObservers(s *Observers) ServerOption {
	return func(c *serverConfig) error { c.observers = s; return nil }
}

// WithRemoteObservers makes the client report its tokens and receipts to s.
func WithRemoteObservers(s *Observers) RemoteOption {
	return func(c *remoteConfig) error { c.observers = s; return nil }
}

// observedForward computes a Forward frame and reports it.
func (se *stageSession) observedForward(f *ForwardFrame) *stageError {
	obs := se.srv.cfg.observers
	if obs == nil {
		return se.forward(f)
	}
	start := time.Now()
	if e := se.forward(f); e != nil {
		return e
	}
	obs.forwarded(ForwardEvent{
		Model: se.srv.model, Layers: LayerRange{se.eng.Stage().First(), se.eng.Stage().Last()},
		Rows: f.Rows(), Token: !f.NoResult, Took: time.Since(start),
	})
	return nil
}

// forwardBatch sends one batch down the chain and, when it asked for a
// result, reports the token.
func (r *Remote) forwardBatch(ctx context.Context, batch []int32, noResult bool, logits []float32) error {
	start := time.Now()
	if err := r.chain.forward(ctx, batch, noResult, r.topK, logits); err != nil {
		return err
	}
	if !noResult && r.cfg.observers != nil {
		r.cfg.observers.token(TokenEvent{Model: r.model, Rows: len(batch), Hops: len(r.chain.route), Took: time.Since(start)})
	}
	return nil
}

// observeBilling returns b reporting its receipts to s.
func (s *Observers) observeBilling(b Billing) Billing {
	if s == nil || b == nil {
		return b
	}
	return observedBilling{b, s}
}

// observePayer returns p reporting its receipts to s.
func (s *Observers) observePayer(p Payer) Payer {
	if s == nil || p == nil {
		return p
	}
	return observedPayer{p, s}
}

// observeAudits returns h reporting every audit stream it serves to s.
func (s *Observers) observeAudits(h network.StreamHandler) network.StreamHandler {
	if s == nil {
		return h
	}
	return func(st network.Stream) {
		h(st)
		s.auditServed()
	}
}

type observedBilling struct {
	Billing
	obs *Observers
}

func (b observedBilling) Propose(u Usage) ([]byte, error) {
	p, err := b.Billing.Propose(u)
	if err == nil {
		b.obs.receipt(ReceiptEvent{Role: RoleServer, State: ReceiptProposed, Usage: u})
	}
	return p, err
}

func (b observedBilling) Agreed(proposal, agreement []byte) error {
	err := b.Billing.Agreed(proposal, agreement)
	state := ReceiptSettled
	if err != nil {
		state = ReceiptRefused
	}
	b.obs.receipt(ReceiptEvent{Role: RoleServer, State: state})
	return err
}

type observedPayer struct {
	Payer
	obs *Observers
}

func (p observedPayer) Agree(proposal []byte, u Usage) ([]byte, error) {
	a, err := p.Payer.Agree(proposal, u)
	state := ReceiptSettled
	if err != nil {
		state = ReceiptRefused
	}
	p.obs.receipt(ReceiptEvent{Role: RoleClient, State: state, Usage: u})
	return a, err
}
