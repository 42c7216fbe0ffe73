// Package dht is discovery for imece (DESIGN.md §3): how a node says what it
// serves, and how anyone finds out who serves which layers of a model.
//
// It holds four things:
//
//   - Record, the signed node record: addresses, served models and layer
//     ranges, hardware tier and multiplier, measured throughput, free capacity,
//     load, P_grid, sequence number and expiry. Its canonical encoding and its
//     signature are below.
//   - Validator, which the private Kademlia DHT (protocol prefix /imece, its
//     own namespace "imece", keys /imece/node/<peerID>) and the gossip topics
//     both use: only a node writes its own key, expired or overlong records are
//     refused, and the highest sequence wins.
//   - Discovery, built on a libp2p host: it runs the DHT and GossipSub,
//     announces this node (Announce, UpdateRecord, Withdraw) and keeps a live
//     Coverage of each watched model.
//   - ChooseLayers, the pure rule behind --layers auto.
//
// It deliberately does not plan routes (pipeline/ does, from a Snapshot), run
// inference, build the libp2p host (node/ does), measure throughput (the caller
// passes what node/hardware measured) or compute layer CIDs (pipeline/model
// does; Announce takes them). Record encoding, validation, the coverage
// bookkeeping and ChooseLayers do no I/O and are tested without a network.
//
// # Announcing
//
// A node serving layers [a, b) of model M provides M's CID and CID(M, i) for
// each i in [a, b) in the DHT, stores its signed record under
// /imece/node/<peerID>, and publishes the record on the topic
// /imece/models/1/<M>. Records live RecordTTL (5 minutes by default) and are
// re-announced every TTL/3 with a higher sequence, so one lost announcement
// costs nothing and a node that dies silently is gone from every view within a
// TTL. The sequence is max(previous + 1, Unix milliseconds): a restarted node
// outranks its records from before the restart without keeping state. Load and
// capacity changes (UpdateRecord) are republished at most every 2 s. Withdraw
// publishes a withdrawn record, which removes the node from views at once.
// Provider records cannot be retracted in Kademlia; they are renewed every 10
// minutes and kept 30 minutes by DHT servers, and a provider without a live
// record is ignored.
//
// # Watching
//
// Watch returns a Coverage of a model, kept current by:
//
//   - gossip: records on the model's topic arrive within about a second;
//   - the DHT: at once and then every minute, FindProviders of the model, then
//     the record of every provider not already known (providers without a
//     usable record are not asked again for a TTL). This is also how a node
//     finds the model's gossip mesh: it connects to a few providers, since
//     GossipSub finds no peers by itself;
//   - expiry: a record leaves the view when its expiry passes;
//   - disconnects: when the last connection to a listed peer closes, the peer
//     is dialled back, and dropped at once if unreachable, until a newer record
//     of it arrives.
//
// Every gossip message goes through a topic validator before it is delivered
// or relayed: undecodable, badly signed or inconsistent records are rejected
// (and count against the sender in GossipSub's scoring); stale, expired or
// off-topic ones are ignored. Neither is propagated.
//
// Snapshot.Capacity sums, per layer, the servers' Rate: Throughput (in
// layer-positions per second, how many layer × token evaluations of this
// model the node does per second at decode) divided by the node's span, since
// a node evaluates its whole span for every position.
//
// # Record encoding, version 1
//
// Deterministic: one record has one encoding, and decoding accepts nothing
// else (no trailing bytes, canonical CIDs and multiaddrs). Integers are
// little-endian.
//
//	record  := u8 version (1) | u8 flags (bit 0 withdrawn; others zero)
//	           | u8 tier | u8 n | peer ID[n] (binary, n <= 64)
//	           | u64 seq | u64 expires (Unix seconds, 1..2^40)
//	           | u32 multiplier (milli) | u32 free slots
//	           | u16 load (permille <= 1000) | u16 P_grid (permille <= 1000)
//	           | u8 naddrs (<= 16) | addr*naddrs
//	           | u8 nmodels (<= 8) | model*nmodels
//	           | signature[64]
//	addr    := u8 n (1..255) | multiaddr[n] (binary)
//	model   := u8 n (<= 64) | CIDv1[n] (binary)
//	           | u32 layers L (1..65536) | u32 first | u32 last (first < last <= L)
//	           | u64 throughput (layer-positions/s, <= 2^40)
//	           | u8 activations (bit 0 f32, bit 1 f16; unknown bits kept)
//
// The whole record is at most MaxRecordSize (5120) bytes. The signature is
// Ed25519 by the key embedded in the peer ID over "imece/node-record/1\n"
// followed by every byte before the signature; the domain prefix keeps it from
// ever being valid for anything else the same key signs. Peer IDs that do not
// embed an Ed25519 key are refused, so every record certifies itself.
package dht
