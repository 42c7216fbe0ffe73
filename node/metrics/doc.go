// Package metrics exposes a running node to Prometheus: GET /metrics in the
// text exposition format, from a registry of the node's own (never the
// process-wide default registry, so many nodes can share a process, as in
// the testnet harness).
//
// Two kinds of series:
//
//   - Counters and histograms of events, fed by a pipeline.Observer attached
//     with node.Observe: tokens generated as a client and computed as a stage,
//     the time of each forward and of each token's round trip through a chain,
//     receipts proposed, settled and refused, audits run and served.
//   - Gauges read from the node's state at scrape time (balance, sessions,
//     peers, P_grid), so they are never stale and cost nothing between scrapes.
//
// Rates are the scraper's business: tokens per second is
// rate(imece_client_tokens_total[1m]) for what this node generated through the
// mesh, rate(imece_stage_tokens_total[1m]) for what its stage computed for
// others. Every metric is listed, with its help text, in metrics.go.
//
// What it deliberately is not: a listener (New returns an http.Handler that
// node/api and `imece serve` mount), a dashboard (package dashboard), or a
// store of history (Prometheus keeps that).
package metrics
