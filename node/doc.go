// Package node is a running imece peer's presence on the network: its
// identity, its libp2p host, its attachment to the mesh through bootstrap
// peers and the LAN, and the addresses it tells others to dial.
//
// What it provides:
//
//   - LoadOrCreateIdentity: the Ed25519 key in <data>/identity.key (0600). The
//     peer ID is the node's wallet (DESIGN.md §2), so the file is never
//     overwritten and a key readable by others is refused.
//   - NewHost: a libp2p host with TCP and QUIC, Noise and TLS, yamux, a
//     connection manager and a resource manager sized for activation streams
//     (limits.go explains every number), plus AutoNAT, hole punching and the
//     relay client for volunteers behind NAT (WithNATTraversal(false) turns
//     them off for tests and loopback).
//   - MeshLink: dials --bootstrap peers, keeps them connected, and after the
//     node has lost every peer redials with capped, jittered exponential
//     backoff, calling a hook so the node re-announces itself.
//   - LANDiscovery: mDNS, so nodes on one LAN find each other.
//   - FullAddrs: the /…/p2p/<id> addresses `imece node` prints.
//   - DirectOnly: the guard that keeps activations off relayed connections.
//   - Node: all of it wired together with discovery (package dht) and, for a
//     volunteer, the stage server and model protocol (package pipeline):
//     Start chooses the layers (fixed or the least covered that fit memory),
//     measures the node's throughput, serves and announces; Close withdraws
//     the announcement and fails open sessions with CodeClosing. A light
//     client uses OpenModel to find a model's peers and fetch its manifest
//     and tokenizer, then generates through chains the planner picks.
//
// Decisions:
//
//   - Relays are for reachability and signalling only. Relayed connections are
//     "limited" in libp2p; pipeline streams are opened without
//     network.WithAllowLimitedConn and served through DirectOnly, so
//     activations always flow over a direct (possibly hole-punched)
//     connection. See direct.go for the libp2p code this relies on.
//   - Pipeline code protects the connections of live sessions from trimming
//     with h.ConnManager().Protect(peer, tag); MeshLink does the same for
//     bootstrap peers (BootstrapProtectTag).
//   - Metrics are off unless a Prometheus registerer is passed, and loggers
//     are injected: the package keeps no global state, so many nodes can share
//     a process (the testnet harness).
//   - UPnP/NAT-PMP port mapping is not enabled: it multicasts to the LAN's
//     gateway on its own, and AutoNAT plus hole punching cover the common home
//     NAT. WithLibp2pOptions(libp2p.NATPortMap()) adds it.
//
// What it deliberately is not: the DHT and node records (package dht), the
// stage protocol and sessions (package pipeline), the ledger, or flags and
// output (cmd/imece). It starts no goroutine without an
// owner: the host, the MeshLink and the LANDiscovery each have Close, to be
// called in reverse order of creation.
package node
