package verify

import "slices"

// Canary is a prompt whose greedy continuation is known: computed by a trusted
// node on its own weights, or shipped with the model (stories260K's reference
// text). A client sends it as an ordinary session, which no stage can tell from a
// real one; a chain that answers it differently computed something other than
// the model.
type Canary struct {
	// Name identifies the canary in logs.
	Name string
	// Prompt is the prompt as the model sees it, BOS included.
	Prompt []int32
	// Want is the greedy continuation, without the end-of-generation token.
	Want []int32
}

// Diverges returns the index of the first token of got that differs from the
// canary's continuation, or -1 when got is exactly Want.
func (c *Canary) Diverges(got []int32) int {
	for i := range min(len(got), len(c.Want)) {
		if got[i] != c.Want[i] {
			return i
		}
	}
	if len(got) != len(c.Want) {
		return min(len(got), len(c.Want))
	}
	return -1
}

// Clone returns a copy that shares no memory with c.
func (c *Canary) Clone() Canary {
	return Canary{Name: c.Name, Prompt: slices.Clone(c.Prompt), Want: slices.Clone(c.Want)}
}
