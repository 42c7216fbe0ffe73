package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/dht"
	"github.com/imece/imece/node/grid"
	"github.com/imece/imece/pipeline"
)

// DefaultCoverageWait is how long a client waits for the network to cover a
// model before it reports the layers nobody serves.
const DefaultCoverageWait = 20 * time.Second

// Model is a model as a client of the mesh sees it: the coverage view of who serves
// its layers, and its manifest and tokenizer fetched from one of them.
type Model struct {
	n    *Node
	Info *pipeline.ModelInfo
	Cov  *dht.Coverage
}

// OpenModel finds the peers serving model id, waits (up to wait) until they cover
// every layer, and fetches the manifest and tokenizer from one of them: all a
// light client needs, without holding any weights. Close the Model when done.
func (n *Node) OpenModel(ctx context.Context, id cid.Cid, wait time.Duration) (_ *Model, err error) {
	cov, err := n.disc.Watch(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			cov.Close()
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	snap, err := cov.WaitFor(wctx, func(s dht.Snapshot) bool { return s.Covered() })
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, uncovered(cov.Snapshot(), id)
	}
	var errs []error
	if n.info != nil {
		// A volunteer of this model has the manifest and tokenizer already
		// (and cannot dial itself for them).
		if mf, tok, ok := n.info(id); ok {
			info, err := pipeline.VerifyModelInfo(id, mf, tok)
			if err != nil {
				return nil, err
			}
			return &Model{n: n, Info: info, Cov: cov}, nil
		}
	}
	for _, p := range servers(snap) {
		if p == n.h.ID() {
			continue
		}
		info, err := pipeline.FetchModelInfo(ctx, n.h, p, id)
		if err == nil {
			if err := n.ledger.Learn(info.Manifest); err != nil {
				return nil, fmt.Errorf("price model: %w", err)
			}
			return &Model{n: n, Info: info, Cov: cov}, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no peer gave the model's manifest: %w", errors.Join(errs...))
}

// uncovered explains what is missing of a model that no chain covers.
func uncovered(s dht.Snapshot, id cid.Cid) error {
	if len(s.Records) == 0 {
		return fmt.Errorf("%w: no peer serves model %s", pipeline.ErrUncovered, id)
	}
	var gaps []pipeline.LayerRange
	for i, srv := range s.Serving {
		if len(srv) > 0 {
			continue
		}
		if k := len(gaps); k > 0 && gaps[k-1].Last == i {
			gaps[k-1].Last = i + 1
		} else {
			gaps = append(gaps, pipeline.LayerRange{First: i, Last: i + 1})
		}
	}
	return &pipeline.UncoveredError{Gaps: gaps}
}

// servers lists the peers of a snapshot, most layers first, so the first asked is
// likely to be a stable volunteer.
func servers(s dht.Snapshot) []peer.ID {
	ids := make([]peer.ID, 0, len(s.Records))
	for id := range s.Records {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b peer.ID) int {
		sa, _ := s.Records[a].Serving(s.Model)
		sb, _ := s.Records[b].Serving(s.Model)
		if d := sb.Span() - sa.Span(); d != 0 {
			return d
		}
		if a < b {
			return -1
		}
		return 1
	})
	return ids
}

// Opener opens sequences on chains through the mesh, for pipeline.Generate.
func (m *Model) Opener(opts ...pipeline.RemoteOption) pipeline.Opener {
	c := m.Info.Manifest.Config
	return func(ctx context.Context, maxLen int) (pipeline.Runner, error) {
		opts := append([]pipeline.RemoteOption{pipeline.WithRemoteLogger(m.n.log),
			pipeline.WithPayer(m.n.ledger, int(m.n.ledger.g.SettlementTokens)),
			pipeline.WithPlanOptions(grid.PlanOption(m.n.cfg.genesis)), pipeline.WithRemoteObservers(&m.n.obs)}, opts...)
		if m.n.auditor != nil {
			opts = append(opts, pipeline.WithAuditor(m.n.auditor))
		}
		return pipeline.OpenRemote(ctx, m.n.h, m.Info.CID, c.Layers, c.VocabSize, maxLen, m.n.PeerSource(m.Cov), opts...)
	}
}

// Generate runs a generation through the mesh.
func (m *Model) Generate(ctx context.Context, req pipeline.Request, opts ...pipeline.RemoteOption) (pipeline.Result, error) {
	return pipeline.Generate(ctx, m.Opener(opts...), m.Info.Tokenizer, req)
}

// Close stops following the model's coverage.
func (m *Model) Close() error { return m.Cov.Close() }
