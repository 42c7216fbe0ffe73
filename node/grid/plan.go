package grid

import (
	"github.com/imece/imece/ledger"
	"github.com/imece/imece/pipeline"
)

// DefaultPlanWeight is the planner's grid weight (pipeline.WithGridWeight) on a
// network that cares about its grid: a hop on a fully green peer may take up
// to 1.5 times as long as on a fully brown one and still win. Between the
// usual extremes of P_grid (0.2 and 0.9) that is a third: enough for equal or
// similar peers to go green, too little to send work to a much slower or much
// farther peer, whose delay the user would feel.
const DefaultPlanWeight = 0.5

// PlanWeight is the planner's grid weight on network g: DefaultPlanWeight,
// or 0 when the genesis gives no weight to carbon or renewables. P_grid is then
// only 1 − load, which the planner already counts (Candidate.Load), and
// weighing it again would only double the load's effect. A nil g is the
// default network.
func PlanWeight(g *ledger.Genesis) float64 {
	if g == nil {
		g = ledger.DefaultGenesis()
	}
	if g.Grid.Carbon == 0 && g.Grid.Renewable == 0 {
		return 0
	}
	return DefaultPlanWeight
}

// PlanOption is the route planner option a client on network g plans with:
// pipeline.WithGridWeight(PlanWeight(g)).
func PlanOption(g *ledger.Genesis) pipeline.PlanOption {
	return pipeline.WithGridWeight(PlanWeight(g))
}
