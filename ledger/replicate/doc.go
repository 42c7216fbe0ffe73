// Package replicate makes every imece node hold every chain: it announces new
// blocks by gossip, pulls what a node missed by a request/response sync
// protocol, and turns forks into fraud proofs that freeze the owner on every
// node (DESIGN.md §5).
//
// # Gossip
//
// New blocks travel on the GossipSub topic /imece/ledger/1/<network>, one
// canonical ledger.Block per message, named by its content so the same block
// announced by its owner and by its counterparty is delivered once. The
// topic validator does only cheap checks — the block decodes and its owner
// signed it — so a forged or garbled block is never relayed; a block the node
// already has is not relayed again. On delivery the block goes to the store,
// which decides: stored; already there; a gap (the block is held and the
// missing blocks are pulled, from the peers that had it first); a fork (the
// store has frozen the owner; the proof goes out on /imece/fraud/1/<network>,
// whose validator checks it, and every node that takes it freezes the owner
// too). The network's name is in both topics, so blocks of another network
// never meet this one's.
//
// # Sync
//
// ProtocolID (/imece/ledger-sync/1.0.0) is one request and one response per
// stream (wire.go has the layouts): a page of the peer's heads (owner,
// sequence, head ID, whether it holds a fraud proof of the owner), a range of
// one chain (at most MaxRangeBlocks and MaxRangeBytes), or one owner's fraud
// proof. Every read is bounded and every request has a deadline; a node
// answers at most a few requests at once and tells the rest it is busy.
//
// Anti-entropy compares heads with a peer and pulls, in order and through
// the store, every chain where the peer is ahead or differs, and every fraud
// proof the node lacks. It runs when a peer that speaks the protocol
// connects, and every 30 s or so with a few random peers: a node that was
// offline catches up, and a partition heals, without anyone announcing
// anything. A pull starts at the node's own head rather than after it, so a
// peer whose chain differs there hands over the block that proves the fork.
//
// # What it is not
//
// It defines no rule: what makes a block valid, a fork a fork, a balance
// frozen, is package ledger's, applied by ledger/store, through which every
// block it receives goes. It trusts no peer for anything but bytes: a peer
// can withhold blocks (another peer supplies them) but cannot make a node
// store a block its owner did not sign in order. It does not find peers
// either: it syncs with the peers the host is connected to (dht and node
// connect them), and reuses the host's one GossipSub router.
package replicate
