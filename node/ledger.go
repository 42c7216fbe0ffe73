package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/ledger"
	"github.com/imece/imece/ledger/store"
	"github.com/imece/imece/node/hardware"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/model"
	"github.com/imece/imece/pipeline/verify"
)

// maxClockSkew bounds how far a proposal's time may be from the client's clock.
// The trust rules read a receipt's time (the audits and the hardware claim in
// force then), so a server must not date its proposals where its record is
// better.
const maxClockSkew = 10 * time.Minute

// costBook holds the cost of every model this node knows the manifest of: the
// models it serves, those it used as a client, those its receipts named. Receipts
// of other models wait, unverified, until the book learns them. The manifests are
// kept in <data>/models so that a reopened ledger (or `imece ledger`) prices the
// same receipts the same way.
type costBook struct {
	dir   string
	mu    sync.RWMutex
	costs map[string]ledger.Cost
}

// loadCostBook reads the manifests kept in dir.
func loadCostBook(dir string) (*costBook, error) {
	b := &costBook{dir: dir}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".manifest") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		mf, err := model.ParseManifest(raw)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", e.Name(), err)
		}
		if err := b.put(mf); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *costBook) put(mf *model.Manifest) error {
	c, err := ledger.CostOf(mf)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.costs == nil {
		b.costs = map[string]ledger.Cost{}
	}
	b.costs[string(mf.CID().Bytes())] = c
	return nil
}

// add learns a manifest and keeps it on disk.
func (b *costBook) add(mf *model.Manifest) error {
	if err := b.put(mf); err != nil {
		return err
	}
	if b.dir == "" {
		return nil
	}
	path := filepath.Join(b.dir, mf.CID().String()+".manifest")
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, mf.Encode(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (b *costBook) lookup(m []byte) (ledger.Cost, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	c, ok := b.costs[string(m)]
	return c, ok
}

// Ledger is the node's side of the economy: its chain and everyone else's in the
// store, and the receipts of the sessions it serves (pipeline.Billing) and uses
// (pipeline.Payer).
type Ledger struct {
	st    *store.Store
	g     *ledger.Genesis
	priv  ed25519.PrivateKey
	self  ledger.Key
	costs *costBook
	log   *slog.Logger
	// publish hands a block this node made or received directly to replication.
	publish func(*ledger.Block)
	// fraud spreads a fork this node found itself in a block it received directly.
	fraud func(*ledger.FraudProof)
	// fetch asks replication for the blocks of an owner's chain that this store
	// lacks, from the peer that has them.
	fetch func(ctx context.Context, from peer.ID, owner ledger.Key) error

	// wake signals the orphan keeper that a block arrived; done stops it and
	// every fetch (doneCtx is done with it).
	wake    chan struct{}
	done    chan struct{}
	doneCtx context.Context
	wg      sync.WaitGroup
	// learning are the models whose manifests are being fetched.
	learning map[string]bool

	mu sync.Mutex
	// orphans are agreements received before the rest of their owner's chain:
	// the receipt is settled for admission's purposes, and the block is stored
	// once replication brings what comes before it.
	orphans map[ledger.BlockID]*ledger.Block
}

var (
	_ pipeline.Billing = (*Ledger)(nil)
	_ pipeline.Payer   = (*Ledger)(nil)
)

// OpenLedgerStore opens the ledger store of a node's data directory with the
// models the node knows, for tools that read a stopped node's ledger.
func OpenLedgerStore(dataDir string, opts ...store.Option) (*store.Store, error) {
	costs, err := loadCostBook(filepath.Join(dataDir, "models"))
	if err != nil {
		return nil, err
	}
	return store.Open(filepath.Join(dataDir, "ledger"), append([]store.Option{store.WithCosts(costs.lookup)}, opts...)...)
}

// VerifyLedger checks a stopped node's ledger store (store.VerifyDir) with the
// models the node knows.
func VerifyLedger(ctx context.Context, dataDir string, opts ...store.Option) (*store.Report, error) {
	costs, err := loadCostBook(filepath.Join(dataDir, "models"))
	if err != nil {
		return nil, err
	}
	return store.VerifyDir(ctx, filepath.Join(dataDir, "ledger"), append([]store.Option{store.WithCosts(costs.lookup)}, opts...)...)
}

// openLedger opens the node's ledger store in <data>/ledger.
func openLedger(dataDir string, g *ledger.Genesis, key crypto.PrivKey, log *slog.Logger) (*Ledger, error) {
	raw, err := key.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ledger: the identity is not an Ed25519 key")
	}
	costs, err := loadCostBook(filepath.Join(dataDir, "models"))
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	l := &Ledger{g: g, priv: ed25519.PrivateKey(raw), costs: costs, log: log,
		wake: make(chan struct{}, 1), done: make(chan struct{}), learning: map[string]bool{}}
	copy(l.self[:], l.priv.Public().(ed25519.PublicKey))
	l.st, err = store.Open(filepath.Join(dataDir, "ledger"),
		store.WithGenesis(g), store.WithCosts(l.costs.lookup), store.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	var cancel context.CancelFunc
	l.doneCtx, cancel = context.WithCancel(context.Background())
	l.wg.Go(func() { <-l.done; cancel() })
	l.wg.Go(l.keepOrphans)
	return l, nil
}

// keepOrphans stores waiting agreements as replication brings their chains.
func (l *Ledger) keepOrphans() {
	for {
		select {
		case <-l.done:
			return
		case <-l.wake:
			l.StoreOrphans()
		}
	}
}

func (l *Ledger) wakeOrphans() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// startLearning reports whether the caller should fetch model id's manifest:
// true once per model until forget.
func (l *Ledger) startLearning(id cid.Cid) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.learning[string(id.Bytes())] {
		return false
	}
	l.learning[string(id.Bytes())] = true
	return true
}

func (l *Ledger) forget(id cid.Cid) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.learning, string(id.Bytes()))
}

func (l *Ledger) close() {
	close(l.done)
	l.wg.Wait()
}

// ErrInsufficientCredits means a client cannot pay for a session.
var ErrInsufficientCredits = errors.New("insufficient credits")

// Store is the node's ledger store.
func (l *Ledger) Store() *store.Store { return l.st }

// Genesis is the network's genesis.
func (l *Ledger) Genesis() *ledger.Genesis { return l.g }

// Self is the node's ledger key.
func (l *Ledger) Self() ledger.Key { return l.self }

// Learn records a model's manifest, so receipts of it can be priced and checked.
func (l *Ledger) Learn(mf *model.Manifest) error {
	if err := l.costs.add(mf); err != nil {
		return err
	}
	_, err := l.st.Revalidate()
	return err
}

// Admit implements pipeline.Billing: a client may open a session if it is not
// frozen, owes this stage no countersignature, and can pay for the session's
// longest possible output at these layers.
func (l *Ledger) Admit(client [32]byte, m cid.Cid, first, last, maxLen int) error {
	k := ledger.Key(client)
	bal, err := l.st.Balance(k)
	if err != nil {
		return err
	}
	if bal.Frozen {
		return fmt.Errorf("credits frozen: client %s forked its chain", k)
	}
	pending, err := l.st.Pending(k)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range pending {
		if _, agreed := l.orphans[p.ID()]; agreed {
			continue
		}
		if p.Owner == l.self {
			e, _ := p.Earn()
			return fmt.Errorf("unsigned receipt: this stage's proposal %d (session %x, window %d) awaits the client's signature; settle it first",
				p.Seq, e.Session[:4], e.Window)
		}
	}
	cost, ok := l.costs.lookup(m.Bytes())
	if !ok {
		return fmt.Errorf("model %s unknown to this stage's ledger", m)
	}
	prec, err := ledger.PrecisionOf(cost, l.g, first, last)
	if err != nil {
		return err
	}
	need := ledger.Spent(ledger.FLOPsPerToken(cost, first, last), uint32(maxLen), prec)
	if have := bal.Available(); have < int64(min(need, 1<<62)) {
		return fmt.Errorf("%w: have %s, need %s", ErrInsufficientCredits, ledger.FormatGFT(have), ledger.FormatGFT(int64(min(need, 1<<62))))
	}
	return nil
}

// Propose implements pipeline.Billing: the server's half of a receipt, priced and
// appended to this node's chain before anyone sees it.
func (l *Ledger) Propose(u pipeline.Usage) ([]byte, error) {
	cost, ok := l.costs.lookup(u.Model.Bytes())
	if !ok {
		return nil, fmt.Errorf("model %s unknown to this stage's ledger", u.Model)
	}
	// The multiplier and reliability the chains give this node now: what
	// clients accept and validators credit at most.
	tr, err := l.st.Trust(l.self, time.Now().UnixMilli())
	if err != nil {
		return nil, err
	}
	e := &ledger.Earn{
		Client: ledger.Key(u.Client), Session: u.Session, Window: uint32(u.Window), Model: u.Model.Bytes(),
		First: uint16(u.First), Last: uint16(u.Last), From: uint32(u.From), To: uint32(u.To),
		Results: uint32(u.Results), Tokens: uint32(u.Tokens),
		Multiplier: tr.Multiplier, Reliability: tr.Reliability,
	}
	if err := e.Price(cost, l.g); err != nil {
		return nil, err
	}
	b, err := l.st.Append(l.priv, ledger.KindEarn, e.Encode())
	if err != nil {
		return nil, err
	}
	l.share(b)
	return b.Encode(), nil
}

// Pending implements pipeline.Billing.
func (l *Ledger) Pending(client [32]byte, session pipeline.SessionID, window int) ([]byte, bool) {
	blocks, err := l.st.Pending(ledger.Key(client))
	if err != nil {
		return nil, false
	}
	for _, b := range blocks {
		if b.Owner != l.self {
			continue
		}
		if e, err := b.Earn(); err == nil && e.Session == session && int(e.Window) == window {
			return b.Encode(), true
		}
	}
	return nil, false
}

// Agreed implements pipeline.Billing: the client's half is stored (and so
// checked) like any block of another chain.
func (l *Ledger) Agreed(proposal, agreement []byte) error {
	p, err := ledger.DecodeBlock(proposal)
	if err != nil {
		return err
	}
	a, err := ledger.DecodeBlock(agreement)
	if err != nil {
		return err
	}
	s, err := a.Spend()
	if err != nil {
		return err
	}
	if s.Proposal != p.ID() || s.Server != l.self {
		return errors.New("the agreement names another proposal")
	}
	err = l.st.Add(a)
	l.checkFork(a.Owner, err)
	switch {
	case err == nil || errors.Is(err, ledger.ErrDuplicate):
	case errors.Is(err, ledger.ErrGap) && l.fetch != nil && l.fetchChain(a.Owner) == nil && l.addIfFits(a):
		// The client's chain came along; the agreement is stored.
	case errors.Is(err, ledger.ErrGap):
		if err := a.VerifySignature(); err != nil {
			return err
		}
		l.mu.Lock()
		if l.orphans == nil {
			l.orphans = map[ledger.BlockID]*ledger.Block{}
		}
		l.orphans[p.ID()] = a
		l.mu.Unlock()
		if l.fetch != nil {
			l.wg.Go(func() { l.catchUp(a.Owner) })
		}
	default:
		return err
	}
	l.share(a)
	return nil
}

// fetchChain pulls an owner's chain from the owner itself, which is connected
// (it is settling with us) and has all of it.
func (l *Ledger) fetchChain(owner ledger.Key) error {
	ctx, cancel := context.WithTimeout(l.doneCtx, 5*time.Second)
	defer cancel()
	p, err := peerOf(owner)
	if err != nil {
		return err
	}
	return l.fetch(ctx, p, owner)
}

// addIfFits stores a block, reporting whether it is now in the store.
func (l *Ledger) addIfFits(b *ledger.Block) bool {
	err := l.st.Add(b)
	return err == nil || errors.Is(err, ledger.ErrDuplicate)
}

// catchUp fetches the chain of an agreement's owner and stores the agreement.
func (l *Ledger) catchUp(owner ledger.Key) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		select {
		case <-l.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	p, err := peerOf(owner)
	if err == nil {
		err = l.fetch(ctx, p, owner)
	}
	if err != nil {
		l.log.Debug("agreement's chain not fetched", "owner", owner, "err", err)
	}
	l.StoreOrphans()
}

// StoreOrphans stores the agreements whose chains have caught up.
func (l *Ledger) StoreOrphans() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, a := range l.orphans {
		if err := l.st.Add(a); err == nil || errors.Is(err, ledger.ErrDuplicate) || !errors.Is(err, ledger.ErrGap) {
			delete(l.orphans, id)
		}
	}
}

// peerOf is the peer ID of a ledger key: Ed25519 peer IDs embed the key.
func peerOf(k ledger.Key) (peer.ID, error) {
	pub, err := crypto.UnmarshalEd25519PublicKey(k[:])
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(pub)
}

// Agree implements pipeline.Payer: the client checks the proposal against what it
// sent, against the model, and against what the chains say of the server (its
// multiplier and reliability at the proposal's time, when this node has the
// server's chain up to the proposal), then countersigns it on its chain with its
// observation of the hop's time.
func (l *Ledger) Agree(proposal []byte, u pipeline.Usage) ([]byte, error) {
	p, err := ledger.DecodeBlock(proposal)
	if err != nil {
		return nil, err
	}
	if err := p.VerifySignature(); err != nil {
		return nil, err
	}
	e, err := p.Earn()
	if err != nil {
		return nil, err
	}
	switch {
	case e.Client != l.self:
		return nil, errors.New("the proposal bills someone else")
	case e.Session != u.Session || int(e.Window) != u.Window:
		return nil, fmt.Errorf("the proposal is for session %x window %d, not %x window %d", e.Session[:4], e.Window, u.Session[:4], u.Window)
	case !bytes.Equal(e.Model, u.Model.Bytes()) || int(e.First) != u.First || int(e.Last) != u.Last:
		return nil, fmt.Errorf("the proposal names other work: layers [%d, %d)", e.First, e.Last)
	case int(e.From) != u.From || int(e.To) > u.To || int(e.Results) > u.Results || int(e.Tokens) > u.Tokens:
		return nil, fmt.Errorf("the proposal claims positions [%d, %d), %d results, %d tokens; this client sent [%d, %d), %d, %d",
			e.From, e.To, e.Results, e.Tokens, u.From, u.To, u.Results, u.Tokens)
	case e.Multiplier > l.g.MaxMultiplier() || e.Reliability > 1000:
		return nil, fmt.Errorf("the proposal claims multiplier %d and reliability %d", e.Multiplier, e.Reliability)
	}
	cost, ok := l.costs.lookup(e.Model)
	if !ok {
		return nil, fmt.Errorf("model %x unknown to this client's ledger", e.Model)
	}
	if err := ledger.ValidateEarn(p, e, cost, l.g); err != nil {
		return nil, err
	}
	if skew := time.Since(time.UnixMilli(p.Time)); skew > maxClockSkew || skew < -maxClockSkew {
		return nil, fmt.Errorf("the proposal is dated %s, %s from this client's clock", time.UnixMilli(p.Time).UTC().Format(time.RFC3339), skew.Round(time.Second))
	}
	// Keep the server's half when its chain is known here; otherwise
	// replication brings it with the blocks before it.
	err = l.st.Add(p)
	if errors.Is(err, ledger.ErrGap) && l.fetch != nil && l.fetchChain(p.Owner) == nil {
		err = l.st.Add(p)
	}
	switch {
	case err == nil || errors.Is(err, ledger.ErrDuplicate):
		// The chain before the proposal is known: check the server's factors.
		tr, err := l.st.Trust(p.Owner, p.Time)
		if err != nil {
			return nil, err
		}
		if e.Multiplier > tr.Multiplier || e.Reliability > tr.Reliability {
			return nil, fmt.Errorf("the proposal claims multiplier %d and reliability %d; the chains give %d and %d",
				e.Multiplier, e.Reliability, tr.Multiplier, tr.Reliability)
		}
	case l.checkFork(p.Owner, err):
		return nil, fmt.Errorf("the server forked its chain: %w", err)
	default:
		l.log.Debug("proposal kept for later", "server", p.Owner, "seq", p.Seq, "err", err)
	}
	s, err := ledger.SpendFor(p)
	if err != nil {
		return nil, err
	}
	s.Micros = attributeMicros(u, cost.Layers)
	b, err := l.st.Append(l.priv, ledger.KindSpend, s.Encode())
	if err != nil {
		return nil, err
	}
	l.share(b)
	return b.Encode(), nil
}

// attributeMicros is the share of the chain's observed time the client
// attributes to one hop: the client sees only the whole chain's time, so each
// hop gets it in proportion to its layers plus one layer's worth for its own
// overhead (network, scheduling),
//
//	hop = chain · (last − first + 1) / (layers + hops)
//
// which sums to the chain's time over a chain covering the model. 0 (not
// observed) when the client measured nothing.
func attributeMicros(u pipeline.Usage, layers int) uint64 {
	if u.Micros <= 0 || layers <= 0 || u.Last <= u.First {
		return 0
	}
	hops := max(u.Hops, 1)
	share := uint64(u.Last-u.First+1) * uint64(u.Micros) / uint64(layers+hops)
	return max(share, 1)
}

// SetHardware records the node's hardware claim on its chain (a KindHardware
// block) when it differs from the chain's latest: the integrator calls it at
// start with the claim of hardware.LoadOrMeasure. A changed device or tier
// starts a quarantine every node enforces (ledger's doc, "Trust").
func (l *Ledger) SetHardware(c hardware.Claim) error {
	h := ledger.Hardware{
		Tier: c.Tier, Multiplier: c.Multiplier, Fingerprint: c.Fingerprint,
		MatmulMFLOPS: c.MatmulMFLOPS, BandwidthMBps: c.BandwidthMBps, LayerMicros: c.LayerMicros, Backend: c.Backend,
	}
	tr, err := l.st.Trust(l.self, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("set hardware: %w", err)
	}
	if tr.Claimed && tr.Claim == h {
		return nil
	}
	b, err := l.st.Append(l.priv, ledger.KindHardware, h.Encode())
	if err != nil {
		return fmt.Errorf("set hardware: %w", err)
	}
	l.share(b)
	return nil
}

// RecordAudit records the result of an audit this node ran (pipeline/verify)
// on its chain (a KindAudit block): every node counts it in the subject's
// reliability, provided this node paid the subject before (its standing).
func (l *Ledger) RecordAudit(r verify.Result) error {
	a := &ledger.Audit{
		Subject: ledger.Key(r.Subject), Session: r.Session, Hop: r.Hop, Model: r.Model,
		First: r.First, Last: r.Last, Position: r.Position, Check: uint8(r.Check), Verdict: uint8(r.Verdict),
	}
	b, err := l.st.Append(l.priv, ledger.KindAudit, a.Encode())
	if err != nil {
		return fmt.Errorf("record audit: %w", err)
	}
	l.share(b)
	return nil
}

// Trust is what the chains say of k now: multiplier, reliability, quarantine.
// The route planner weighs nodes by it: a failed audit cuts a node's share.
func (l *Ledger) Trust(k ledger.Key) (store.Trust, error) {
	return l.st.Trust(k, time.Now().UnixMilli())
}

// checkFork spreads the fraud proof when storing a block revealed a fork.
func (l *Ledger) checkFork(owner ledger.Key, err error) bool {
	if !errors.Is(err, ledger.ErrFork) {
		return false
	}
	proofs, perr := l.st.FraudProofs()
	if perr != nil || l.fraud == nil {
		return true
	}
	for _, p := range proofs {
		if p.Owner() == owner {
			l.fraud(p)
		}
	}
	return true
}

func (l *Ledger) share(b *ledger.Block) {
	if l.publish != nil {
		l.publish(b)
	}
}
