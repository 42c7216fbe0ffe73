package replicate

import (
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// The names below are part of the wire protocol: every imece node must agree on
// them, so changing one is a protocol version change.
const (
	// ProtocolID is the request/response sync protocol: a node asks a peer for
	// its heads, a range of one chain, or the fraud proof of one owner.
	ProtocolID protocol.ID = "/imece/ledger-sync/1.0.0"

	// blockTopicPrefix starts the GossipSub topic of new blocks:
	// /imece/ledger/1/<network>. The 1 versions the message format (one
	// canonical ledger.Block encoding per message).
	blockTopicPrefix = "/imece/ledger/1/"
	// fraudTopicPrefix starts the topic of fraud proofs: /imece/fraud/1/<network>,
	// one canonical ledger.FraudProof encoding per message.
	fraudTopicPrefix = "/imece/fraud/1/"
)

// BlockTopic is the GossipSub topic on which the nodes of network announce new
// blocks. Naming the network in the topic keeps blocks of different networks
// apart without looking inside them.
func BlockTopic(network string) string { return blockTopicPrefix + network }

// FraudTopic is the GossipSub topic on which the nodes of network spread the
// proofs of forks, so every node freezes the same owners.
func FraudTopic(network string) string { return fraudTopicPrefix + network }

// Bounds of the sync protocol. A node answers no request with more, and reads
// no response larger: a peer can make a node do and hold only this much per
// request.
const (
	// MaxRangeBlocks bounds the blocks of one range response.
	MaxRangeBlocks = 1000
	// MaxRangeBytes bounds the encoded blocks of one range response.
	MaxRangeBytes = 4 << 20
	// MaxHeadsPerPage bounds the chain heads of one heads response (73 bytes
	// each, about 300 KiB).
	MaxHeadsPerPage = 4096
	// maxNetworkLen bounds the network name in topics.
	maxNetworkLen = 128
)

// Default behaviour, sized for a node that shares its machine with inference.
const (
	// DefaultAntiEntropyInterval is the mean time between two rounds of
	// comparing heads with a few peers; each round is jittered by ±25%, so
	// nodes do not all ask at once.
	DefaultAntiEntropyInterval = 30 * time.Second
	// DefaultAntiEntropyFanout is how many peers one round asks.
	DefaultAntiEntropyFanout = 3
	// DefaultRangeBatch is how many blocks one range request asks for.
	DefaultRangeBatch = MaxRangeBlocks
	// DefaultHeadsBatch is how many heads one heads request asks for.
	DefaultHeadsBatch = MaxHeadsPerPage
	// DefaultRequestTimeout bounds one sync request, from opening the stream
	// to the end of the response.
	DefaultRequestTimeout = 20 * time.Second
	// DefaultServeTimeout bounds answering one request.
	DefaultServeTimeout = 20 * time.Second
	// DefaultMaxServing bounds the requests a node answers at once; more are
	// told to come back later (a busy status).
	DefaultMaxServing = 8
	// DefaultSyncWorkers is how many pulls run at once.
	DefaultSyncWorkers = 2
	// DefaultGapDelay is how long a gap seen on gossip waits before a pull:
	// most gaps are two blocks swapped on the way, filled a moment later.
	DefaultGapDelay = 100 * time.Millisecond
	// DefaultTailDelay is how long after a gap a node asks the peers that had
	// the chain for anything past its head. GossipSub drops messages when a
	// peer's queue is full, as in a burst, and a lost last block leaves no
	// later block to reveal the gap; a gap is the sign of such a burst.
	DefaultTailDelay = time.Second
	// DefaultMaxHeld bounds the blocks held while waiting for the blocks
	// before them.
	DefaultMaxHeld = 4096
	// DefaultGossipBuffer is how many delivered messages wait for the store
	// before GossipSub drops more (a dropped block is a gap, filled by a pull).
	DefaultGossipBuffer = 1024
)
