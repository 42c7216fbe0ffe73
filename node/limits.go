package node

import (
	"maps"

	"github.com/libp2p/go-libp2p"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// The default resource limits are sized for pipeline traffic, not for the
// small request/response protocols libp2p's own defaults assume. The numbers
// follow from three budgets:
//
//   - SessionBudget concurrent pipeline sessions. Each session holds one
//     long-lived stream per hop (DESIGN.md §4), so a stage has one inbound
//     stream from its predecessor and one outbound to its successor per
//     session, and in a small network all of them may go to the same peer.
//   - FrameBudget bytes in the largest activation frame: a prefill batch is
//     positions × hidden size × 2 or 4 bytes, e.g. 2048 positions of a
//     4096-wide model in f32 is 32 MiB. Decode frames are a few KiB.
//   - SystemMemory bytes for everything the resource manager accounts: yamux
//     and QUIC receive windows and the frame buffers the pipeline reserves on
//     its streams. Model weights are not in it.
//
// From these:
//
//	scope                         streams in/out/total   memory
//	system                        2048/2048/4096         1 GiB  (SystemMemory)
//	peer (each)                   512/512/1024           512 MiB
//	protocol, service (each)      1024/1024/2048         1 GiB
//	protocol, service ×peer       256/256/512            512 MiB
//	stream (each)                 -                      64 MiB (2 × FrameBudget)
//	connections                   256 in, 256 out, 512 total; 8 per peer
//
// A stream may hold two full frames (one being read while the previous is
// handed on). One peer may use half of the node's memory: a chain neighbour
// carries many sessions, but no single peer can starve the rest. Yamux grows a
// stream's receive window up to 16 MiB, reserved on the peer scope at a
// priority that succeeds only below half the peer limit, so windows alone can
// take at most 256 MiB per peer. 256 streams per protocol per peer in each
// direction is 4 × SessionBudget: headroom for streams of failed-over sessions
// that have not been reset yet. The connection ceiling stays above the
// connection manager's high watermark (libp2p refuses the opposite).
// libp2p's own protocols (identify, ping, AutoNAT, relay, hole punching) keep
// the per-service limits libp2p sets for them; file descriptors scale with the
// process limit as libp2p's defaults do.
//
// When a reservation fails the pipeline answers "busy" rather than queueing:
// the client routes around a saturated node (DESIGN.md §4).
const (
	// SessionBudget is the number of concurrent pipeline sessions the default
	// resource limits are sized for.
	SessionBudget = 64

	// FrameBudget is the largest activation frame the default limits leave
	// room for; the pipeline's frame size cap must not exceed it, or a
	// full-size frame's memory reservation fails.
	FrameBudget = 32 << 20

	// SystemMemory is the memory, in bytes, the default resource manager lets
	// all libp2p traffic of a node hold at once.
	SystemMemory = 1 << 30

	streamMemory = 2 * FrameBudget
	peerMemory   = SystemMemory / 2
)

// DefaultResourceLimits returns the limits NewHost uses unless
// WithResourceLimits replaces them; see the table above for the numbers and
// the reasons.
func DefaultResourceLimits() rcmgr.ConcreteLimitConfig {
	scaling := rcmgr.DefaultLimits
	// Copy the maps so SetDefaultServiceLimits never writes into libp2p's
	// package-level defaults.
	scaling.ServiceLimits = maps.Clone(scaling.ServiceLimits)
	scaling.ServicePeerLimits = maps.Clone(scaling.ServicePeerLimits)
	scaling.ProtocolLimits = maps.Clone(scaling.ProtocolLimits)
	scaling.ProtocolPeerLimits = maps.Clone(scaling.ProtocolPeerLimits)
	scaling.PeerLimits = maps.Clone(scaling.PeerLimits)
	libp2p.SetDefaultServiceLimits(&scaling)
	base := scaling.Scale(SystemMemory, fileDescriptorBudget())

	perPeerProtocol := rcmgr.ResourceLimits{
		StreamsInbound:  4 * SessionBudget,
		StreamsOutbound: 4 * SessionBudget,
		Streams:         8 * SessionBudget,
		Memory:          peerMemory,
	}
	perProtocol := rcmgr.ResourceLimits{
		StreamsInbound:  16 * SessionBudget,
		StreamsOutbound: 16 * SessionBudget,
		Streams:         32 * SessionBudget,
		Memory:          SystemMemory,
	}
	return rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			StreamsInbound:  32 * SessionBudget,
			StreamsOutbound: 32 * SessionBudget,
			Streams:         64 * SessionBudget,
			ConnsInbound:    256,
			ConnsOutbound:   256,
			Conns:           512,
			Memory:          SystemMemory,
		},
		PeerDefault: rcmgr.ResourceLimits{
			StreamsInbound:  8 * SessionBudget,
			StreamsOutbound: 8 * SessionBudget,
			Streams:         16 * SessionBudget,
			ConnsInbound:    8,
			ConnsOutbound:   8,
			Conns:           8,
			Memory:          peerMemory,
		},
		ProtocolDefault:     perProtocol,
		ServiceDefault:      perProtocol,
		ProtocolPeerDefault: perPeerProtocol,
		ServicePeerDefault:  perPeerProtocol,
		Stream:              rcmgr.ResourceLimits{Memory: streamMemory},
	}.Build(base)
}

// fileDescriptorBudget is half the process's descriptor limit, as libp2p's
// auto-scaled defaults use, or libp2p's base of 256 where the limit is unknown.
func fileDescriptorBudget() int {
	fd := int(rcmgr.DefaultLimits.AutoScale().ToPartialLimitConfig().System.FD)
	if fd <= 0 {
		return 256
	}
	return fd
}
