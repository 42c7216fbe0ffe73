// Package testnet starts local imece networks for people and for tests: N nodes in
// one process on loopback TCP, each a real node (identity, libp2p host, DHT, gossip,
// stage server) serving a share of a model's layers, and a light client that
// generates through them. `imece testnet` is this package behind a flag set; the
// end-to-end tests here also start separate `imece node` processes and, where a
// Docker engine runs, containers.
//
// It is a harness, not a simulation: nothing is mocked, only the network is
// loopback and the timings (record TTLs) shorter.
package testnet
