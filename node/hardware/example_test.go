package hardware_test

import (
	"fmt"
	"time"

	"github.com/imece/imece/node/hardware"
)

// Rating figures: two Sapphire Rapids server cores on the CPU backend, and an
// H100 measuring what its anchor expects.
func ExampleScale_Rate() {
	s := hardware.DefaultScale()
	for _, f := range []hardware.Figures{
		{MatmulGFLOPS: 193, BandwidthGBps: 30.5, LayerLatency: 7440 * time.Microsecond},
		{MatmulGFLOPS: 593_640, BandwidthGBps: 2680, LayerLatency: 95 * time.Microsecond},
	} {
		r := s.Rate(f)
		fmt.Printf("index %.4f: %s, multiplier %.3f\n", r.Index, r.TierName, float64(r.Multiplier)/1000)
	}
	// Output:
	// index 0.0620: Mobile / Edge, multiplier 0.081
	// index 24.2115: Data-centre accelerator, multiplier 8.000
}
