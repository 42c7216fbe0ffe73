// Package pipeline is distributed inference: the generation loop a client runs, and
// (as the mesh lands) the stage protocol, the route planner, failover and fallback.
//
// The generation loop is written against Runner, "give me the logits after these
// tokens", so the same loop drives a model in this process (Local) and a chain of
// stages across the network. Tokenization, sampling and streaming of text happen
// here, on the client, never on the stages.
//
// Audits keep the stages honest: each stage keeps, for a while, the rows a
// session sent it, and answers other clients' requests to re-execute hops of
// the layers it serves (audit.go); a client's Auditor re-checks a sampled
// share of its sessions' hops on independent replicas after the work, and
// canaries send prompts whose answers are known (auditor.go, canary.go). The
// design and the calibrated tolerances are in verify/doc.go.
package pipeline
