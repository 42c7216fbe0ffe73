package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/imece/imece/node"
	"github.com/imece/imece/pipeline"
	"github.com/imece/imece/pipeline/verify"
)

// Namespace prefixes every metric: imece_….
const Namespace = "imece"

// Option configures New.
type Option func(*config) error

type config struct {
	reg *prometheus.Registry
	log *slog.Logger
}

// WithRegistry registers the node's metrics on reg instead of a registry of
// their own, so a program can serve them beside its own (Go runtime, process)
// on one endpoint.
func WithRegistry(reg *prometheus.Registry) Option {
	return func(c *config) error {
		if reg == nil {
			return errors.New("metrics: nil registry")
		}
		c.reg = reg
		return nil
	}
}

// WithLogger receives the errors of scrapes (a ledger that cannot be read).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("metrics: nil logger")
		}
		c.log = l
		return nil
	}
}

// Metrics is a node's metrics: the series, the observer feeding them and the
// handler serving them. Close detaches it from the node.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler
	detach  func()

	clientTokens   prometheus.Counter
	clientTokenDur *prometheus.HistogramVec
	stageTokens    prometheus.Counter
	stagePositions prometheus.Counter
	stageForward   *prometheus.HistogramVec
	receipts       *prometheus.CounterVec
	audits         *prometheus.CounterVec
	auditsServed   prometheus.Counter
}

// latencyBuckets span a forward of a small model on one machine (tens of
// microseconds) to a slow chain across continents (seconds).
var latencyBuckets = prometheus.ExponentialBuckets(50e-6, 2.5, 14)

// New registers the metrics of n and attaches their observer to it. Serve
// the result at /metrics; Close it before closing the node.
func New(n *node.Node, opts ...Option) (*Metrics, error) {
	if n == nil {
		return nil, errors.New("metrics: nil node")
	}
	cfg := config{log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.reg == nil {
		cfg.reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		reg: cfg.reg,
		clientTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "client", Name: "tokens_total",
			Help: "Tokens this node generated as a client through the mesh, one per result a chain returned; tokens per second is rate() of it.",
		}),
		clientTokenDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "client", Name: "token_seconds", Buckets: latencyBuckets,
			Help: "Round trip of one token through the whole chain, from sending the Forward to its result (phase prefill: the prompt's first token).",
		}, []string{"phase"}),
		stageTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "stage", Name: "tokens_total",
			Help: "Tokens this node's stage computed for clients (Forwards that asked for a result); rate() of it is the stage's token rate.",
		}),
		stagePositions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "stage", Name: "positions_total",
			Help: "Positions this node's stage pushed through its layers, prompts' included: the work it is paid for.",
		}),
		stageForward: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "stage", Name: "forward_seconds", Buckets: latencyBuckets,
			Help: "Time of one hop at this stage, from a Forward's arrival to its output handed on (phase prefill: more than one position).",
		}, []string{"phase"}),
		receipts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "receipts_total",
			Help: "Receipt halves by role (server: this node earns, client: it spends) and state (proposed, settled, refused: the other side's half did not check out).",
		}, []string{"role", "state"}),
		audits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "audits_total",
			Help: "Audits this node ran on others' hops, by check (recompute, canary) and verdict (pass, fail).",
		}, []string{"check", "verdict"}),
		auditsServed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "audits_served_total",
			Help: "Audit requests this node's stage answered for other clients (re-executions and evidence).",
		}),
	}
	// Every label value shows from the first scrape, at 0, so that rate()
	// and alerts see a series before its first event.
	for _, p := range []string{"prefill", "decode"} {
		m.clientTokenDur.WithLabelValues(p)
		m.stageForward.WithLabelValues(p)
	}
	for _, s := range []pipeline.ReceiptState{pipeline.ReceiptProposed, pipeline.ReceiptSettled, pipeline.ReceiptRefused} {
		m.receipts.WithLabelValues(string(pipeline.RoleServer), string(s))
	}
	for _, s := range []pipeline.ReceiptState{pipeline.ReceiptSettled, pipeline.ReceiptRefused} {
		m.receipts.WithLabelValues(string(pipeline.RoleClient), string(s))
	}
	for _, c := range []verify.Check{verify.CheckRecompute, verify.CheckCanary} {
		for _, v := range []verify.Verdict{verify.Pass, verify.Fail} {
			m.audits.WithLabelValues(c.String(), v.String())
		}
	}
	cs := []prometheus.Collector{
		m.clientTokens, m.clientTokenDur, m.stageTokens, m.stagePositions, m.stageForward,
		m.receipts, m.audits, m.auditsServed,
		&nodeCollector{n: n, log: cfg.log},
	}
	for i, c := range cs {
		if err := cfg.reg.Register(c); err != nil {
			// Only what this call registered: a collector equal to one
			// already there (a second New on one registry) would
			// unregister the first's.
			for _, done := range cs[:i] {
				cfg.reg.Unregister(done)
			}
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	m.handler = promhttp.HandlerFor(cfg.reg, promhttp.HandlerOpts{ErrorLog: slogErrors{cfg.log}})
	m.detach = n.Observe(m.observer())
	return m, nil
}

func phase(rows int) string {
	if rows > 1 {
		return "prefill"
	}
	return "decode"
}

func (m *Metrics) observer() *pipeline.Observer {
	return &pipeline.Observer{
		Forwarded: func(e pipeline.ForwardEvent) {
			m.stagePositions.Add(float64(e.Rows))
			if e.Token {
				m.stageTokens.Inc()
			}
			m.stageForward.WithLabelValues(phase(e.Rows)).Observe(e.Took.Seconds())
		},
		Token: func(e pipeline.TokenEvent) {
			m.clientTokens.Inc()
			m.clientTokenDur.WithLabelValues(phase(e.Rows)).Observe(e.Took.Seconds())
		},
		Receipt: func(e pipeline.ReceiptEvent) {
			m.receipts.WithLabelValues(string(e.Role), string(e.State)).Inc()
		},
		Audited: func(r verify.Result) {
			m.audits.WithLabelValues(r.Check.String(), r.Verdict.String()).Inc()
		},
		AuditServed: m.auditsServed.Inc,
	}
}

// ServeHTTP serves the registry in the Prometheus text format (or protobuf,
// as the scraper negotiates).
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.handler.ServeHTTP(w, r) }

// Registry is where the metrics are registered, for a program adding its own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Close stops counting the node's events; the registry stays readable.
func (m *Metrics) Close() error {
	m.detach()
	return nil
}

// routingTableSize is the number of peers in the node's Kademlia routing table.
func routingTableSize(n *node.Node) (int, bool) {
	d, ok := n.Discovery().Routing().(*kaddht.IpfsDHT)
	if !ok {
		return 0, false
	}
	return d.RoutingTable().Size(), true
}

// slogErrors passes promhttp's errors to the node's logger.
type slogErrors struct{ log *slog.Logger }

func (l slogErrors) Println(v ...any) { l.log.Warn("metrics scrape", "err", v) }
