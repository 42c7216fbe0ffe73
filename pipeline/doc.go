// Package pipeline is distributed inference: the generation loop a client runs, and
// (as the mesh lands) the stage protocol, the route planner, failover and fallback.
//
// The generation loop is written against Runner, "give me the logits after these
// tokens", so the same loop drives a model in this process (Local) and a chain of
// stages across the network. Tokenization, sampling and streaming of text happen
// here, on the client, never on the stages.
package pipeline
