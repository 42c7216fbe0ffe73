package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/node"
	"github.com/imece/imece/pipeline"
)

// DefaultMeshWait is how long a request waits for the mesh to cover a model
// it has not used before; short, so a request without a chain goes to the
// fallback (or fails with 503) promptly.
const DefaultMeshWait = 5 * time.Second

// Mesh generates through the mesh with the node as a light client of its own
// network, paying from the node's ledger. It keeps each model it has opened
// (its coverage view, manifest and tokenizer) until Close.
type Mesh struct {
	n    *node.Node
	cfg  meshConfig
	mu   sync.Mutex
	open map[string]*meshModel // by CID
}

type meshModel struct {
	mdl *node.Model
	tm  *textModel
}

type meshConfig struct {
	wait  time.Duration
	names map[string]string // CID → name
	log   *slog.Logger
	opts  []pipeline.RemoteOption
}

// MeshOption configures NewMesh.
type MeshOption func(*meshConfig)

// MeshWait is how long a request waits for a chain to cover a model it has
// not used before (default DefaultMeshWait).
func MeshWait(d time.Duration) MeshOption { return func(c *meshConfig) { c.wait = d } }

// MeshName gives model id a human name that requests may use.
func MeshName(id cid.Cid, name string) MeshOption {
	return func(c *meshConfig) { c.names[id.String()] = name }
}

// MeshLogger receives warnings.
func MeshLogger(l *slog.Logger) MeshOption { return func(c *meshConfig) { c.log = l } }

// MeshRemoteOptions are passed to every chain opened (retries, for instance).
func MeshRemoteOptions(opts ...pipeline.RemoteOption) MeshOption {
	return func(c *meshConfig) { c.opts = append(c.opts, opts...) }
}

// NewMesh generates through n's network.
func NewMesh(n *node.Node, opts ...MeshOption) *Mesh {
	cfg := meshConfig{wait: DefaultMeshWait, names: map[string]string{}, log: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	return &Mesh{n: n, cfg: cfg, open: map[string]*meshModel{}}
}

// Close stops following the coverage of the models opened.
func (m *Mesh) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for id, mm := range m.open {
		errs = append(errs, mm.mdl.Close())
		delete(m.open, id)
	}
	return errors.Join(errs...)
}

// Models implements Generator: the model this node serves and those it has
// opened.
func (m *Mesh) Models(context.Context) []Model {
	seen := map[string]Model{}
	if id, _, ok := m.n.Serving(); ok {
		seen[id.String()] = Model{ID: id.String(), Name: m.cfg.names[id.String()], OwnedBy: "imece"}
	}
	for id, name := range m.cfg.names {
		if _, ok := seen[id]; !ok {
			seen[id] = Model{ID: id, Name: name, OwnedBy: "imece"}
		}
	}
	// Models the node's ledger has priced (it saw receipts of them): the
	// network serves or served them, by CID.
	for _, id := range m.n.KnownModels() {
		if _, ok := seen[id.String()]; !ok {
			seen[id.String()] = Model{ID: id.String(), OwnedBy: "imece"}
		}
	}
	m.mu.Lock()
	for id, mm := range m.open {
		seen[id] = mm.tm.info("imece")
	}
	m.mu.Unlock()
	out := make([]Model, 0, len(seen))
	for _, v := range seen {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// resolve turns a request's model (CID or name) into a CID.
func (m *Mesh) resolve(name string) (cid.Cid, error) {
	if name == "" {
		if id, _, ok := m.n.Serving(); ok {
			return id, nil
		}
		if len(m.cfg.names) == 1 {
			for id := range m.cfg.names {
				return cid.Decode(id)
			}
		}
		return cid.Undef, fmt.Errorf("%w: no model named and none by default", ErrBadRequest)
	}
	for id, n := range m.cfg.names {
		if n == name {
			return cid.Decode(id)
		}
	}
	id, err := cid.Decode(name)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %q is neither a model CID nor a known name", ErrUnknownModel, name)
	}
	return id, nil
}

// model opens id through the mesh, or returns it opened before.
func (m *Mesh) model(ctx context.Context, id cid.Cid) (*meshModel, error) {
	m.mu.Lock()
	mm, ok := m.open[id.String()]
	m.mu.Unlock()
	if ok {
		return mm, nil
	}
	mdl, err := m.n.OpenModel(ctx, id, m.cfg.wait)
	if err != nil {
		return nil, err
	}
	c := mdl.Info.Manifest.Config
	mm = &meshModel{mdl: mdl, tm: newTextModel(id.String(), m.cfg.names[id.String()], mdl.Info.Tokenizer, mdl.Info.ChatTemplate, c.ContextLength, m.cfg.log.Warn)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, ok := m.open[id.String()]; ok { // opened meanwhile by another request
		mdl.Close()
		return prev, nil
	}
	m.open[id.String()] = mm
	return mm, nil
}

// Generate implements Generator.
func (m *Mesh) Generate(ctx context.Context, req *Request) (*Result, error) {
	id, err := m.resolve(req.Model)
	if err != nil {
		return nil, err
	}
	mm, err := m.model(ctx, id)
	if err != nil {
		return nil, err
	}
	l := m.n.Ledger()
	pay := &meter{Payer: l}
	var route routeRecord
	opts := append([]pipeline.RemoteOption{pipeline.WithPayer(pay, int(l.Genesis().SettlementTokens))}, m.cfg.opts...)
	open := mm.mdl.Opener(opts...)
	wrapped := func(ctx context.Context, maxLen int) (pipeline.Runner, error) {
		r, err := open(ctx, maxLen)
		if rem, ok := r.(*pipeline.Remote); ok && err == nil {
			return &routedRemote{Remote: rem, rec: &route}, nil
		}
		return r, err
	}
	res, err := mm.tm.generate(ctx, wrapped, req)
	if err != nil {
		return nil, err
	}
	res.CostMilliGFT = pay.total()
	res.Route = route.hops()
	return res, nil
}

// meter is the node's ledger as the session's payer, counting what each
// countersigned receipt spends: the request's exact cost, as the ledger
// records it. Remote settles the last window in Close, which Generate calls
// before returning, so the count is complete when the request ends.
type meter struct {
	pipeline.Payer
	mu    sync.Mutex
	milli int64
}

func (p *meter) Agree(proposal []byte, u pipeline.Usage) ([]byte, error) {
	b, err := p.Payer.Agree(proposal, u)
	if err != nil {
		return b, err
	}
	blk, derr := ledger.DecodeBlock(b)
	if derr != nil {
		return b, nil
	}
	if s, serr := blk.Spend(); serr == nil {
		p.mu.Lock()
		p.milli += int64(s.Amount)
		p.mu.Unlock()
	}
	return b, nil
}

func (p *meter) total() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.milli
}

// routeRecord keeps the last chain a generation used.
type routeRecord struct {
	mu    sync.Mutex
	route []pipeline.Hop
}

func (r *routeRecord) hops() []Hop {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Hop, len(r.route))
	for i, h := range r.route {
		out[i] = Hop{Peer: peer.ID(h.Peer).String(), Layers: pipeline.LayerRange{First: h.First, Last: h.Last}.String()}
	}
	return out
}

// routedRemote notes the chain after each forward (failover may change it);
// the embedded Remote keeps its Close, SetTopK and Recoveries for Generate.
type routedRemote struct {
	*pipeline.Remote
	rec *routeRecord
}

func (r *routedRemote) Forward(ctx context.Context, tokens []int32, logits []float32) error {
	err := r.Remote.Forward(ctx, tokens, logits)
	if route := r.Remote.Route(); err == nil && route != nil {
		r.rec.mu.Lock()
		r.rec.route = route
		r.rec.mu.Unlock()
	}
	return err
}
