package pipeline

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ReceiptProtocol settles a session's work between a client and one stage: the
// stage proposes its half of a receipt, the client countersigns it.
const ReceiptProtocol = "/imece/receipt/1.0.0"

// Usage is what one stage did for one client in one settlement window of a
// session: what a receipt records, as the stage counted it and as the client
// expects it.
type Usage struct {
	Client  [32]byte
	Session SessionID
	Window  int
	Model   cid.Cid
	// First and Last are the layers the stage ran.
	First, Last int
	// From and To bound the positions processed in the window, [From, To).
	From, To int
	// Results counts the positions whose logits the stage computed (the last
	// stage only); Tokens the tokens the client generated, one per Forward that
	// asked for a result.
	Results, Tokens int
	// Final marks the session's last window.
	Final bool
	// Micros is the client's observation of the window: the wall-clock time,
	// in microseconds, from sending each Forward that asked for a result to
	// receiving it, summed, for the whole chain; 0 when not observed (a
	// server's count). Hops is the chain's length. The client's ledger
	// attributes the hop's share of the time to its agreement, from which the
	// ledger checks the server's claimed hardware.
	Micros int64
	Hops   int
}

// Billing is how a stage server charges for its work; the node implements it on
// its ledger. A server without one serves for free.
type Billing interface {
	// Admit is asked before a session opens, with the most the session can cost
	// (maxLen tokens); an error refuses the session with CodePaymentRequired and
	// the error's text, e.g. "insufficient credits: have 3.2 GFT, need 10.0".
	Admit(client [32]byte, model cid.Cid, first, last, maxLen int) error
	// Propose records this server's signed half of a receipt for u on its chain
	// and returns the block's encoding.
	Propose(u Usage) ([]byte, error)
	// Pending returns the proposal for (client, session, window) that the client
	// has not countersigned, if there is one.
	Pending(client [32]byte, session SessionID, window int) ([]byte, bool)
	// Agreed checks and stores the client's half of the receipt proposed.
	Agreed(proposal, agreement []byte) error
}

// Payer is how a client pays; the node implements it on its ledger.
type Payer interface {
	// Agree checks a stage's proposal against the usage the client counted
	// itself, appends the client's countersigned half to its chain and returns
	// its encoding. It refuses a proposal that claims more than u.
	Agree(proposal []byte, u Usage) ([]byte, error)
}

// Receipt protocol messages: length-prefixed (u32) blobs.
//
//	request   session [16] | hop u16 | window u32 | to u32
//	proposal  status u8 (0 ok, else an ErrorCode) | blob (block, or error text)
//	agreement blob
//	ack       status u8 | blob (error text)
const (
	maxReceiptBlob = 16 << 10
	receiptTimeout = 30 * time.Second
)

// serveReceipt answers one settlement request.
func (s *StageServer) serveReceipt(st network.Stream) {
	defer st.Close()
	st.SetDeadline(time.Now().Add(receiptTimeout))
	r := bufio.NewReader(st)
	var req [16 + 2 + 4 + 4]byte
	if _, err := io.ReadFull(r, req[:]); err != nil {
		st.Reset()
		return
	}
	var id SessionID
	copy(id[:], req[:16])
	hop := int(binary.LittleEndian.Uint16(req[16:]))
	window := int(binary.LittleEndian.Uint32(req[18:]))
	to := int(binary.LittleEndian.Uint32(req[22:]))
	client, kerr := PeerKey(st.Conn().RemotePeer())
	fail := func(code ErrorCode, format string, args ...any) {
		writeStatusBlob(st, byte(code), []byte(fmt.Sprintf(format, args...)))
	}
	if kerr != nil {
		fail(CodeBadRequest, "settlement from a peer without an Ed25519 key")
		return
	}
	proposal, code, err := s.propose(client, id, hop, window, to)
	if err != nil {
		fail(code, "%v", err)
		return
	}
	if err := writeStatusBlob(st, 0, proposal); err != nil {
		return
	}
	agreement, err := readBlob(r)
	if err != nil {
		return
	}
	if err := s.cfg.billing.Agreed(proposal, agreement); err != nil {
		s.cfg.log.Warn("receipt agreement refused", "client", st.Conn().RemotePeer(), "err", err)
		fail(CodeBadRequest, "agreement refused: %v", err)
		return
	}
	writeStatusBlob(st, 0, nil)
}

// propose closes the window of a live session, or finds the proposal already
// made for it (the session ended and proposed its last window itself).
func (s *StageServer) propose(client [32]byte, id SessionID, hop, window, to int) ([]byte, ErrorCode, error) {
	s.mu.Lock()
	se := s.byKey[sessionKey{id, hop}]
	s.mu.Unlock()
	if se != nil {
		if se.client != client {
			return nil, CodeNoSuchSession, errors.New("the session is another client's")
		}
		// The session's settle lock makes closing a window and recording its
		// proposal one step, so a proposal never goes missing between the two.
		se.settleMu.Lock()
		defer se.settleMu.Unlock()
		if u, ok := se.closeWindow(window, to, false); ok {
			p, err := s.cfg.billing.Propose(u)
			if err != nil {
				return nil, CodeInternal, err
			}
			return p, 0, nil
		}
	}
	if p, ok := s.cfg.billing.Pending(client, id, window); ok {
		return p, 0, nil
	}
	return nil, CodeNoSuchSession, fmt.Errorf("no open window %d and no proposal pending for it", window)
}

// forwarded records a Forward that asked for a result: one generated token,
// owed once the stage has computed it.
type forwarded struct {
	end   int // one past the Forward's last position
	token bool
}

// closeWindow ends the session's settlement window (when its index is window)
// at position to, the client's count when it asked: the stage may already be
// computing the next window's tokens. final closes at the session's end.
func (se *stageSession) closeWindow(window, to int, final bool) (Usage, bool) {
	se.usageMu.Lock()
	defer se.usageMu.Unlock()
	if window != se.usage.Window {
		return Usage{}, false
	}
	if final || to > se.processed {
		to = se.processed
	}
	if to < se.usage.From {
		return Usage{}, false
	}
	u := se.usage
	u.To, u.Final = to, final
	k := 0
	for ; k < len(se.forwards) && se.forwards[k].end <= to; k++ {
		if se.forwards[k].token {
			u.Tokens++
		}
	}
	if se.last {
		u.Results = u.Tokens
	}
	se.forwards = append(se.forwards[:0], se.forwards[k:]...)
	se.usage = Usage{
		Client: u.Client, Session: u.Session, Window: u.Window + 1, Model: u.Model,
		First: u.First, Last: u.Last, From: u.To,
	}
	return u, true
}

// settleOnEnd proposes, when a session ends with work not yet settled, the
// receipt of its last window; the client must countersign it before this server
// serves it again.
func (se *stageSession) settleOnEnd() {
	b := se.srv.cfg.billing
	if b == nil || se.eng == nil {
		return
	}
	se.settleMu.Lock()
	defer se.settleMu.Unlock()
	se.usageMu.Lock()
	w := se.usage.Window
	idle := se.processed == se.usage.From
	se.usageMu.Unlock()
	if idle {
		return
	}
	u, ok := se.closeWindow(w, 0, true)
	if !ok {
		return
	}
	if _, err := b.Propose(u); err != nil {
		se.log.Warn("final receipt not proposed", "err", err)
	}
}

func writeStatusBlob(w io.Writer, status byte, b []byte) error {
	buf := make([]byte, 0, 5+len(b))
	buf = append(buf, status)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(b)))
	_, err := w.Write(append(buf, b...))
	return err
}

func writeBlob(w io.Writer, b []byte) error {
	buf := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err := w.Write(append(buf, b...))
	return err
}

func readBlob(r *bufio.Reader) ([]byte, error) {
	var n uint32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return nil, err
	}
	if n > maxReceiptBlob {
		return nil, fmt.Errorf("blob of %d bytes", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

// readStatusBlob reads a status byte and a blob.
func readStatusBlob(r *bufio.Reader) (byte, []byte, error) {
	status, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	b, err := readBlob(r)
	return status, b, err
}

// settle runs one settlement with the stage of hop for window: proposal, check,
// agreement, acknowledgement.
func settle(ctx context.Context, h host.Host, p peer.ID, payer Payer, u Usage, hop int) error {
	ctx, cancel := context.WithTimeout(ctx, receiptTimeout)
	defer cancel()
	st, err := h.NewStream(ctx, p, ReceiptProtocol)
	if err != nil {
		return err
	}
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		st.SetDeadline(dl)
	}
	req := make([]byte, 0, 26)
	req = append(req, u.Session[:]...)
	req = binary.LittleEndian.AppendUint16(req, uint16(hop))
	req = binary.LittleEndian.AppendUint32(req, uint32(u.Window))
	req = binary.LittleEndian.AppendUint32(req, uint32(u.To))
	if _, err := st.Write(req); err != nil {
		return err
	}
	r := bufio.NewReader(st)
	status, proposal, err := readStatusBlob(r)
	if err != nil {
		return err
	}
	if status != 0 {
		return fmt.Errorf("stage refused to propose (%s): %s", ErrorCode(status), proposal)
	}
	agreement, err := payer.Agree(proposal, u)
	if err != nil {
		st.Reset()
		return fmt.Errorf("proposal refused: %w", err)
	}
	if err := writeBlob(st, agreement); err != nil {
		return err
	}
	status, msg, err := readStatusBlob(r)
	if err != nil {
		return err
	}
	if status != 0 {
		return fmt.Errorf("stage refused the agreement (%s): %s", ErrorCode(status), msg)
	}
	return nil
}
