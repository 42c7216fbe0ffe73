// Package grid is how a volunteer tells the network how clean and how idle the
// electricity behind its compute is (DESIGN.md §3, issue 5): the grid signal
// sources, P_grid, and the refresh that keeps the node's record current.
//
//	P_grid = w1(1−L) + w2(1−C) + w3·R
//
// with L the node's load, C the normalised carbon intensity of its grid, R the
// grid's renewable share, and w1, w2, w3 the genesis's GridWeights (milli,
// summing to 1000). Node records carry P_grid in permille; clients' route
// planners weigh it (pipeline.WithGridWeight), so that work flows to clean,
// idle grids.
//
// What it provides:
//
//   - Source, with File (a local JSON or CSV time series, reloaded when it
//     changes), HTTP (carbon-intensity APIs, cached, size-capped, with
//     deadlines and fallbacks), Simulated (a daily curve per zone for
//     testnets, a pure function of seed and time) and Static.
//   - Score, the integer formula; Signal, which applies it to a source's
//     reading, the weights and the node's load.
//   - Refresher, the one goroutine: it recomputes the node's P_grid and load
//     every interval and hands changes to the node, which republishes its
//     record (dht.Discovery.UpdateRecord).
//   - PlanWeight and PlanOption, the planner's grid weight for a network.
//
// It deliberately does not sign or publish records (dht does, node wires it),
// plan routes (pipeline does) or measure the node's power draw: P_grid is about
// the grid a node draws from, and its load, not its watts.
//
// # Normalisation
//
// C = clamp(intensity / 800 gCO2eq/kWh, 0, 1) in permille, 800 being about a
// coal-fired grid (WithCarbonCeiling changes it; a network should keep one
// value). R is the renewable share in permille. All terms are rounded to
// permille before Score, which works in integers, rounding half up: the value
// ends up in a signed record and every node computes it the same way.
//
// Missing data does not make a node look green. When a source gives carbon but
// no renewable share (or the reverse), the missing term's weight goes to the
// other grid term. When it gives nothing (no source, a failed API, a series
// that ended), the node advertises the world's average grid (480 g/kWh, 30%
// renewable: P_grid 0.55 idle under the default weights), neither rewarded nor
// shut out for saying nothing.
//
// # Time series files (File)
//
// JSON, one object with a list of points:
//
//	{"points": [
//	  {"time": "2025-06-01T00:00:00Z", "carbon_g_per_kwh": 212, "renewable_share": 0.41},
//	  {"time": "2025-06-01T00:30:00Z", "carbon_g_per_kwh": 198},
//	  {"time": "2025-06-01T01:00:00Z", "renewable_percent": 47}
//	]}
//
// CSV with a header naming the columns (any order, case-insensitive; other
// columns are ignored, '#' starts a comment line, an empty cell is unknown):
//
//	time,carbon_g_per_kwh,renewable_share
//	2025-06-01T00:00:00Z,212,0.41
//	2025-06-01T00:30:00Z,198,
//
// renewable_percent (0 to 100) may replace renewable_share (0 to 1). A time is
// RFC 3339, Unix seconds, or "HH:MM": a file of times of day is a daily profile
// in UTC, repeated every day, wrapping from its last point to its first. Each
// value holds until the next (Step, the default, right for period averages) or
// is interpolated linearly (WithInterpolation(Linear), for samples). The last
// value of a dated series holds for an hour (WithValidity); after that, or
// before the first value, there is no reading. A file also may be a saved API
// response in one of the shapes below. Files are capped at 16 MiB and
// 120,000 values; intensities must lie in [0, 5000] g/kWh.
//
// # HTTP endpoints (HTTP)
//
// Responses are recognised by shape:
//
//   - UK Carbon Intensity API (api.carbonintensity.org.uk):
//     {"data":[{"from":"2018-01-20T12:00Z","to":"2018-01-20T12:30Z",
//     "intensity":{"forecast":266,"actual":263,"index":"moderate"}}]} from
//     /intensity, /intensity/{from}/fw24h and the like (actual when present,
//     else forecast); {"data":{"from":…,"to":…,"generationmix":[{"fuel":"wind",
//     "perc":27.1},…]}} from /generation, whose renewable share is biomass +
//     hydro + solar + wind; and the regional answers, which nest a region's
//     periods under "data" (the first region is used).
//   - Electricity Maps (api.electricitymaps.com/v3): {"zone":"DE",
//     "carbonIntensity":302,"datetime":"2019-05-21T00:00:00.000Z",…} from
//     /carbon-intensity/latest, {"renewablePercentage":…,
//     "fossilFreePercentage":…} from /power-breakdown/latest (renewable
//     preferred; fossil-free, which counts nuclear, only in its absence), and
//     {"history":[…]} or {"forecast":[…]} lists of the same.
//   - the native JSON shape above, for an operator's own endpoint.
//
// Several URLs combine, the first to give a value winning: the intensity and
// generation endpoints of the UK API together give both terms. Every request
// has a deadline (10 s), a body cap (2 MiB) and only a 200 is accepted; a
// response is cached for 10 minutes and read for any time it covers (a 24-hour
// forecast serves the day). A failed fetch is retried after 30 s, doubling up
// to the cache TTL, while the last good response keeps serving until its values
// stop holding (3 hours after the last for "latest" answers); then the node
// falls back to the average grid. Keys go in headers (WithHeader("auth-token",
// key)) and URLs are logged without their query.
//
// # Simulated zones (Simulated)
//
// A zone's renewable share is a base (wind, hydro) plus solar following a half
// sine from 06:00 to 18:00 local time, plus smooth hourly weather noise drawn
// from the seed; its carbon intensity is the fossil part's intensity, raised
// around a 19:00 evening peak, times the non-renewable share, plus 30 g/kWh for
// the renewable part. SimZones are three presets eight hours apart (sim-east,
// sim-central, sim-west), each with its own clean hours over a UTC day.
//
// # Routing (the trade-off)
//
// The planner multiplies a hop's time (compute, load included, and latency)
// by 1 + w(1 − P_grid), w = PlanWeight = 0.5. With equal performance the
// greener peer always wins; a green peer keeps winning while it is slower by
// less than the ratio of the factors (at most 1.5×, about 1.3× between P_grid
// 0.9 and 0.2); beyond that performance wins. Load counts twice on purpose:
// in the planner as the slowdown of a shared peer, in P_grid as idleness, so a
// green peer that fills up hands work to the next greenest before it is slow.
package grid
