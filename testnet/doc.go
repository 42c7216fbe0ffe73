// Package testnet starts local imece networks for people and for tests: N nodes in
// one process on loopback TCP, each a real node (identity, libp2p host, DHT, gossip,
// stage server) serving a share of a model's layers, and a light client that
// generates through them. `imece testnet` is this package behind a flag set; the
// end-to-end tests here also start separate `imece node` processes and, where a
// Docker engine runs, containers.
//
// The compose network (docker-compose.yml, docker/) runs the same cooperative in
// containers: a bootstrap node with a well-known test identity, two replicas of
// each of two spans of the embedded model and a light client, from a FROM
// scratch image of the static binary (docker/build.sh; the engine here has no
// registry, so nothing is pulled and the binary is built on the host).
//
// It is a harness, not a simulation: nothing is mocked, only the network is
// loopback and the timings (record TTLs) shorter.
package testnet
