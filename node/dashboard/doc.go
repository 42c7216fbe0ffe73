// Package dashboard is the page a volunteer looks at: GET / serves one
// embedded HTML page (inline CSS and JavaScript, no CDN, no build step) that
// polls GET /api/status every two seconds and shows this node (ID,
// addresses, the layers it serves), its peers (ranges served, throughput,
// load, P_grid, tier and multiplier, reliability from the ledger, latency),
// each known model's layer coverage, the node's balance and latest receipts,
// its grid signal and its live token rate.
//
// GET /api/status is the same data as JSON (Status), for scripts; its fields
// are documented on the types in status.go and stay backward compatible.
//
// Decisions:
//
//   - State is read when asked, not cached: the coverage views are the DHT's
//     live ones, balances and receipts come from the ledger store, so a status
//     is never older than the request. The only state kept here is the token
//     rate: per-second buckets fed by a pipeline.Observer, with no goroutine.
//   - The models shown are the one the node serves, those its ledger knows
//     (it used or priced them), and those given with WithModels; each is
//     watched (dht.Coverage) from the first status that names it until Close.
//   - The page is plain DOM and CSS, light or dark with the system's setting,
//     and shows what it could not load instead of stale data.
//
// What it deliberately is not: a listener (the caller mounts the handler, on
// node/api's listener or `imece serve`'s), Prometheus metrics (package
// metrics), or an admin interface: it only reads.
package dashboard
