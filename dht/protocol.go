package dht

import (
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// The names below are part of the wire protocol: every imece node must agree on
// them, so changing one is a protocol version change.
const (
	// ProtocolPrefix makes the Kademlia DHT private to imece: its protocol is
	// /imece/kad/1.0.0, so imece nodes never mix with the public IPFS DHT and
	// never store IPFS records.
	ProtocolPrefix protocol.ID = "/imece"

	// Namespace is the DHT record namespace whose validator this package owns.
	Namespace = "imece"

	// nodeKeyPrefix starts the DHT key of a node record: /imece/node/<peerID>.
	nodeKeyPrefix = "/" + Namespace + "/node/"

	// topicPrefix starts the GossipSub topic of a model: /imece/models/1/<modelCID>.
	// The 1 versions the message format (a node record as encoded here).
	topicPrefix = "/imece/models/1/"

	// signatureDomain is prepended to a record's body before signing, so a node
	// record signature can never be replayed as a signature over anything else
	// the same key signs (ledger blocks, libp2p handshakes).
	signatureDomain = "imece/node-record/1\n"
)

// NodeKey is the DHT key under which p's signed node record is stored. Only p
// can write it: the validator checks the key against the record's signer.
func NodeKey(p peer.ID) string { return nodeKeyPrefix + p.String() }

// ModelTopic is the GossipSub topic on which records of nodes serving model are
// published, so that watchers see joins and leaves without DHT queries.
func ModelTopic(model cid.Cid) string { return topicPrefix + model.String() }
