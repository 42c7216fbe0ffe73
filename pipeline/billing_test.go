package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

// tally is a Billing and a Payer that keep receipts as JSON in memory: enough to
// test the settlement protocol's bookkeeping without a ledger.
type tally struct {
	mu       sync.Mutex
	proposed []Usage
	agreed   []Usage
	pending  map[[32]byte][]byte
	refuse   bool // the payer refuses to sign
}

func newTally() *tally { return &tally{pending: map[[32]byte][]byte{}} }

func (t *tally) Admit(client [32]byte, _ cid.Cid, _, _, _ int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.pending[client]; ok {
		return errors.New("unsigned receipt outstanding")
	}
	return nil
}

func (t *tally) Propose(u Usage) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, _ := json.Marshal(u)
	t.proposed = append(t.proposed, u)
	t.pending[u.Client] = b
	return b, nil
}

func (t *tally) Pending(client [32]byte, _ SessionID, _ int) ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.pending[client]
	return b, ok
}

func (t *tally) Agreed(proposal, agreement []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !bytes.Equal(proposal, agreement) {
		return errors.New("agreement does not match")
	}
	var u Usage
	json.Unmarshal(proposal, &u)
	delete(t.pending, u.Client)
	t.agreed = append(t.agreed, u)
	return nil
}

func (t *tally) Agree(proposal []byte, want Usage) ([]byte, error) {
	var u Usage
	if err := json.Unmarshal(proposal, &u); err != nil {
		return nil, err
	}
	t.mu.Lock()
	refuse := t.refuse
	t.mu.Unlock()
	if refuse {
		return nil, errors.New("not signing")
	}
	if u.From != want.From || u.To > want.To || u.Tokens > want.Tokens || u.Results > want.Results {
		return nil, fmt.Errorf("proposal %+v claims more than %+v", u, want)
	}
	return proposal, nil
}

// TestSettlement: three stages each settle their work every 16 tokens and at
// the end; the windows cover every position once and the last stage alone
// counts results. A client that refuses to countersign is then refused.
func TestSettlement(t *testing.T) {
	ms := newMesh(t)
	bills := []*tally{newTally(), newTally(), newTally()}
	for i, r := range [][2]int{{0, 2}, {2, 4}, {4, 5}} {
		ms.serve(r[0], r[1], WithBilling(bills[i]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	payer := newTally()
	client := newHost(t)
	gen := func() error {
		open := func(ctx context.Context, maxLen int) (Runner, error) {
			return OpenRemote(ctx, client, ms.id, ms.m.Config.Layers, ms.m.Config.VocabSize, maxLen, ms.peers,
				WithPayer(payer, 16))
		}
		_, err := Generate(ctx, open, ms.tok, Request{Prompt: "Once upon a time", MaxTokens: 40})
		return err
	}
	if err := gen(); err != nil {
		t.Fatal(err)
	}
	// 5 prompt positions then 39 decoded (the 40th token is sampled, never fed):
	// 44 positions; results at the prefill and each decode step: 40 tokens.
	for i, b := range bills {
		if len(b.pending) != 0 {
			t.Errorf("stage %d: %d receipts left unsigned", i, len(b.pending))
		}
		pos, tokens, results := 0, 0, 0
		for w, u := range b.agreed {
			if u.Window != w || u.From != pos {
				t.Errorf("stage %d window %d: %+v does not continue at %d", i, w, u, pos)
			}
			if u.Tokens > 16 {
				t.Errorf("stage %d window %d: %d tokens, settled every 16", i, w, u.Tokens)
			}
			pos, tokens, results = u.To, tokens+u.Tokens, results+u.Results
		}
		wantResults := 0
		if i == 2 {
			wantResults = 40
		}
		if pos != 44 || tokens != 40 || results != wantResults {
			t.Errorf("stage %d settled %d positions, %d tokens, %d results; want 44, 40, %d", i, pos, tokens, results, wantResults)
		}
	}
	payer.refuse = true
	if err := gen(); err != nil {
		t.Fatal(err) // served once more: the refusal is discovered at settlement
	}
	err := gen()
	var he *HopError
	if !errors.As(err, &he) || he.Code != CodePaymentRequired {
		t.Fatalf("a client that refused to sign was served again: %v", err)
	}
	if !errors.Is(err, ErrPaymentRequired) {
		t.Fatalf("the refusal %v is not errors.Is ErrPaymentRequired", err)
	}
}
