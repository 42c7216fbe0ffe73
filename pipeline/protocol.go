package pipeline

import "github.com/libp2p/go-libp2p/core/protocol"

// The libp2p protocols of distributed inference, versioned so a node can speak an
// older version while the network upgrades.
const (
	// StageProtocol carries one session's frames between a client and the first
	// stage, or between consecutive stages of a chain: one long-lived stream per hop
	// per session.
	StageProtocol protocol.ID = "/imece/pipeline/1.0.0"
	// ModelProtocol serves a model's manifest and tokenizer to light clients, which
	// hold no weights.
	ModelProtocol protocol.ID = "/imece/model/1.0.0"
	// AuditProtocol carries audits: a client asks the stages of its session for
	// the rows they received, and an auditor serving the same layers to
	// re-execute a hop on them. See audit.go.
	AuditProtocol protocol.ID = "/imece/audit/1.0.0"
)
