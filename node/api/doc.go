// Package api is the OpenAI-compatible HTTP API of a node: GET /v1/models,
// POST /v1/completions and POST /v1/chat/completions, streamed as server-sent
// events or answered whole, in OpenAI's shapes, so existing clients and SDKs
// work unchanged.
//
// The server (New) is an http.Handler over a Generator: Mesh generates through
// the network with the node as a light client paying from its own ledger;
// Local runs a whole model in this process (imece serve, cost 0); WithFallback
// puts an OpenAI-compatible endpoint (pipeline.Fallback) behind either, for
// requests no chain can serve. Other handlers (the dashboard, Prometheus
// metrics) are mounted on the same mux with WithRoute; the server itself
// answers only under /v1/, with a JSON 404 for unknown paths there.
//
// Decisions:
//
//   - Models are named by CID or by a human name ("stories260K"); /v1/models
//     lists a named model under both ids. An empty "model" picks the node's
//     own model.
//   - Chat prompts are rendered with the model's chat template (pipeline/chat),
//     or chat.Default for models without one (or with an unsupported one,
//     logged); control tokens the template writes are parsed as such.
//   - Stop sequences are applied to the text before it leaves the server: text
//     that may begin a stop sequence is held back until it cannot, and
//     generation ends at the first complete one (finish_reason "stop").
//   - Sampling: temperature (default 1), top_p (default 1), top_k (an
//     extension, default 40 as in llama.cpp's server), seed. n must be 1;
//     logprobs, echo, suffix, best_of and tools are refused with 400 rather
//     than silently ignored. frequency_penalty and presence_penalty are
//     accepted and ignored: OpenAI's additive penalties have no faithful
//     counterpart in the multiplicative repeat penalty this sampler has.
//   - max_tokens (or max_completion_tokens) defaults to 16 for completions,
//     as OpenAI does, and to the rest of the context for chat.
//   - Every response carries an "imece" object: cost_gft (what this node's
//     ledger paid, from the receipts it countersigned), route (the chain's
//     peers and layers) and fallback; a fallback answer also has the header
//     X-Imece-Fallback: 1. Streams put it in the last chunk (and the usage
//     chunk with stream_options.include_usage).
//   - Errors are OpenAI's {"error": {message, type, param, code}}: 400 bad
//     parameters, 401 missing or wrong key, 402 insufficient credits
//     (pipeline.ErrPaymentRequired), 404 unknown model or path, 413 body too
//     large, 502 the fallback failed, 503 no chain covers the model and there
//     is no fallback, 504 the request's deadline, 500 anything else. An error
//     after a stream started is sent as a last "data: {"error": …}" event.
//   - Keys (LoadKeys: one per line, # comments) are compared in constant time
//     from "Authorization: Bearer KEY"; CheckExposure refuses an API beyond
//     loopback without them, since anyone reaching it spends the node's
//     credits.
//   - A client that disconnects cancels its generation (the request's
//     context); every generation also has a deadline (WithRequestTimeout),
//     and bodies are capped (WithMaxBody).
//
// What it deliberately is not: embeddings, tools or logprobs, batching of
// several prompts per request, or an HTML page (the dashboard is mounted by
// the caller).
package api
