package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imece/imece/ledger"
)

// receipt makes one settled receipt: server's proposal of window w to client
// and client's agreement, as blocks after the given heads.
func receipt(t testing.TB, server, client *party, model string, w uint32) (earn, spend *ledger.Block) {
	t.Helper()
	e := earnFor(t, client.key, model, w)
	earn, err := ledger.NewEarn(server.priv, server.head, e, server.next())
	if err != nil {
		t.Fatal(err)
	}
	server.head = earn.Head()
	sp, err := ledger.SpendFor(earn)
	if err != nil {
		t.Fatal(err)
	}
	spend, err = ledger.NewSpend(client.priv, client.head, sp, client.next())
	if err != nil {
		t.Fatal(err)
	}
	client.head = spend.Head()
	return earn, spend
}

type party struct {
	priv []byte
	key  ledger.Key
	head ledger.Head
	now  int64
}

func newParty(name string) *party {
	priv := testKey(name)
	return &party{priv: priv, key: pub(priv), now: 1_700_000_000_000}
}

func (p *party) next() int64 { p.now += 1000; return p.now }

// TestReceiptsSettle stores receipts in both orders of their halves and checks
// balances, the pending index, history and that a reopened store agrees.
func TestReceiptsSettle(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, WithCosts(knows("m")))
	srv, cli := newParty("server"), newParty("client")

	e1, s1 := receipt(t, srv, cli, "m", 0)
	addAll(t, s, []*ledger.Block{e1})
	pending, err := s.Pending(cli.key)
	if err != nil || len(pending) != 1 || pending[0].ID() != e1.ID() {
		t.Fatalf("Pending before the agreement = %v, %v", pending, err)
	}
	addAll(t, s, []*ledger.Block{s1})
	if pending, _ := s.Pending(cli.key); len(pending) != 0 {
		t.Fatalf("Pending after the agreement = %d blocks", len(pending))
	}

	// The agreement first: held, then settled when the proposal arrives.
	e2, s2 := receipt(t, srv, cli, "m", 1)
	addAll(t, s, []*ledger.Block{s2})
	if b, _ := s.Balance(cli.key); b.PendingSpend == 0 {
		t.Fatalf("an agreement waiting for its proposal is not pending: %+v", b)
	}
	addAll(t, s, []*ledger.Block{e2})

	e, _ := e1.Earn()
	// The server's only client is no independent evidence (ledger's doc,
	// "Trust"): it is credited at most what the client spent.
	earned := min(e.Amount, e.Spend)
	check := func(s *Store) {
		t.Helper()
		sb, _ := s.Balance(srv.key)
		cb, _ := s.Balance(cli.key)
		if sb.Earned != 2*earned || cb.Spent != 2*e.Spend || sb.PendingEarn != 0 || cb.PendingSpend != 0 {
			t.Fatalf("server %+v, client %+v; want earned %d, spent %d", sb, cb, 2*earned, 2*e.Spend)
		}
		if cb.Available() != int64(cb.Allowance-2*e.Spend) {
			t.Fatalf("client available %d", cb.Available())
		}
	}
	check(s)

	h, err := s.History(cli.key, 10)
	if err != nil || len(h) != 4 {
		t.Fatalf("History(client) = %d blocks, %v", len(h), err)
	}
	if h[0].ID() != s2.ID() && h[0].ID() != e2.ID() {
		t.Errorf("History starts with block %d of %s", h[0].Seq, h[0].Owner)
	}
	with, err := s.HistoryWith(srv.key, cli.key, 10)
	if err != nil || len(with) != 4 {
		t.Fatalf("HistoryWith = %d blocks, %v", len(with), err)
	}
	if other, _ := s.HistoryWith(srv.key, pub(testKey("stranger")), 10); len(other) != 0 {
		t.Fatalf("HistoryWith(stranger) = %d blocks", len(other))
	}

	// A proposal replaying a window is refused by the chain rules.
	replay, err := ledger.NewEarn(srv.priv, srv.head, earnFor(t, cli.key, "m", 1), srv.next())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Add(replay); !errors.Is(err, ledger.ErrReplay) {
		t.Fatalf("replayed window: %v", err)
	}

	if _, err := s.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := s.Export(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"amount_milli_gft"`) || !strings.Contains(out.String(), `"proposal":"bafk`) {
		t.Fatalf("export lacks decoded bodies:\n%s", out.String())
	}
	var first ExportedBlock
	if err := json.Unmarshal(bytes.SplitN(out.Bytes(), []byte("\n"), 2)[0], &first); err != nil {
		t.Fatal(err)
	}
	s.Close()
	check(openTest(t, dir, WithCosts(knows("m"))))
}

// TestRevalidate: a receipt on a model the store does not know stays pending,
// and settles once the store learns the model's cost.
func TestRevalidate(t *testing.T) {
	var known atomic.Bool
	costs := func(m []byte) (ledger.Cost, bool) {
		c, ok := knows("late")(m)
		return c, ok && known.Load()
	}
	dir := t.TempDir()
	s := openTest(t, dir, WithCosts(costs))
	srv, cli := newParty("server"), newParty("client")
	earn, spend := receipt(t, srv, cli, "late", 0)
	addAll(t, s, []*ledger.Block{earn, spend})
	if b, _ := s.Balance(srv.key); b.Earned != 0 || b.PendingEarn == 0 {
		t.Fatalf("a receipt on an unknown model counted: %+v", b)
	}
	known.Store(true)
	res, err := s.Revalidate()
	if err != nil || len(res.Settled) != 1 {
		t.Fatalf("Revalidate = %+v, %v", res, err)
	}
	if b, _ := s.Balance(srv.key); b.Earned == 0 || b.PendingEarn != 0 {
		t.Fatalf("after Revalidate: %+v", b)
	}
	if _, err := s.Verify(context.Background()); err != nil {
		t.Fatalf("the stored accounts lag the State: %v", err)
	}
}

// TestAccountsChecked: a stored account that disagrees with the chains is
// reported by Verify and mended by Open.
func TestAccountsChecked(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, WithCosts(knows("m")))
	srv, cli := newParty("server"), newParty("client")
	earn, spend := receipt(t, srv, cli, "m", 0)
	addAll(t, s, []*ledger.Block{earn, spend})
	rawSet(t, s, accountKey(srv.key), encodeAccount(ledger.Balance{Earned: 1 << 40}))
	_, err := s.Verify(context.Background())
	var be *BlockError
	if !errors.As(err, &be) || be.Owner != srv.key || be.Seq != 0 {
		t.Fatalf("Verify = %v, want the server's account named", err)
	}
	t.Log(err)
	s.Close()
	s = openTest(t, dir, WithCosts(knows("m")))
	if _, err := s.Verify(context.Background()); err != nil {
		t.Fatalf("Open did not mend the account: %v", err)
	}
}
