package replicate

import "errors"

// Errors of the sync protocol, as a requester sees them. A failed pull is
// never fatal: the next gap, connection or anti-entropy round tries again,
// possibly with another peer.
var (
	// ErrClosed: the Replicator was closed.
	ErrClosed = errors.New("replicate: closed")
	// ErrProtocol: a peer sent bytes that are not the sync protocol (a
	// malformed message, a count over the bounds, blocks other than those
	// asked for). The peer is faulty or hostile; nothing it sent is used.
	ErrProtocol = errors.New("replicate: malformed sync message")
	// ErrRefused: the peer answered that the request was malformed.
	ErrRefused = errors.New("replicate: peer refused the request")
	// ErrBusy: the peer is answering as many requests as it allows; ask
	// another peer or later.
	ErrBusy = errors.New("replicate: peer busy")
	// ErrNotFound: the peer does not have what was asked (a fraud proof).
	ErrNotFound = errors.New("replicate: peer does not have it")
	// ErrPeerFailed: the peer could not read its own store to answer.
	ErrPeerFailed = errors.New("replicate: peer failed to answer")
)
