package pipeline

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
)

// ticketDomain separates ticket signatures from every other signature a node key
// makes (ledger blocks, node records).
const ticketDomain = "imece/ticket/1\n"

// ErrBadTicket means an Open frame's ticket does not verify: the session is not
// authorised by the client it names.
var ErrBadTicket = errors.New("pipeline: bad session ticket")

// ticketMessage is what a client signs to open a session: the session, the model
// and the length it may reach. Every stage bills the named client for what it
// computes in this session, and the client agrees to receipts only for the hops
// of the route it chose, so the ticket need not name the route.
func ticketMessage(o *OpenFrame) []byte {
	m := make([]byte, 0, len(ticketDomain)+16+len(o.Model)+8)
	m = append(m, ticketDomain...)
	m = append(m, o.Session[:]...)
	m = binary.LittleEndian.AppendUint16(m, uint16(len(o.Model)))
	m = append(m, o.Model...)
	m = binary.LittleEndian.AppendUint32(m, uint32(o.MaxLen))
	return m
}

// signTicket names the client and signs the session.
func signTicket(priv ed25519.PrivateKey, o *OpenFrame) {
	copy(o.Client[:], priv.Public().(ed25519.PublicKey))
	copy(o.Ticket[:], ed25519.Sign(priv, ticketMessage(o)))
}

// verifyTicket checks that the named client authorised the session.
func verifyTicket(o *OpenFrame) error {
	if !ed25519.Verify(o.Client[:], ticketMessage(o), o.Ticket[:]) {
		return ErrBadTicket
	}
	return nil
}

// HostKey returns the Ed25519 private key of a libp2p host: the key a client signs
// tickets and ledger blocks with, the same one its peer ID embeds.
func HostKey(h host.Host) (ed25519.PrivateKey, error) {
	k := h.Peerstore().PrivKey(h.ID())
	if k == nil || k.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("host %s has no Ed25519 key", h.ID())
	}
	raw, err := k.Raw()
	if err != nil {
		return nil, err
	}
	if len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("host key of %d bytes", len(raw))
	}
	return ed25519.PrivateKey(raw), nil
}
