package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imece/imece/node/grid"
)

// gridFlags choose where a volunteer reads its grid's state from, for P_grid.
type gridFlags struct {
	file    string
	urls    []string
	headers []string
	zone    string
}

func (f *gridFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.file, "grid-file", "", "JSON or CSV time series of the grid's carbon intensity and renewable share (re-read when it changes)")
	fl.StringArrayVar(&f.urls, "grid-url", nil, "carbon-intensity API to poll: UK Carbon Intensity, Electricity Maps or the native JSON shape (repeatable: the first answer wins per term)")
	fl.StringArrayVar(&f.headers, "grid-header", nil, `HTTP header for --grid-url, "Name: value" (e.g. an Electricity Maps auth-token; repeatable)`)
	fl.StringVar(&f.zone, "grid-zone", "", "advertise a simulated zone's daily curve (sim-east, sim-central, sim-west), for testnets")
}

// source builds the grid source the flags name: nil when none is given.
func (f *gridFlags) source(log *slog.Logger) (grid.Source, error) {
	given := 0
	for _, set := range []bool{f.file != "", len(f.urls) > 0, f.zone != ""} {
		if set {
			given++
		}
	}
	switch {
	case given > 1:
		return nil, fmt.Errorf("--grid-file, --grid-url and --grid-zone exclude each other")
	case len(f.headers) > 0 && len(f.urls) == 0:
		return nil, fmt.Errorf("--grid-header needs --grid-url")
	case f.file != "":
		return grid.NewFile(f.file, grid.WithLogger(log))
	case len(f.urls) > 0:
		opts := []grid.Option{grid.WithLogger(log)}
		for _, h := range f.headers {
			name, value, ok := strings.Cut(h, ":")
			if !ok || strings.TrimSpace(name) == "" {
				return nil, fmt.Errorf("--grid-header %q: want \"Name: value\"", h)
			}
			opts = append(opts, grid.WithHeader(strings.TrimSpace(name), strings.TrimSpace(value)))
		}
		return grid.NewHTTP(f.urls, opts...)
	case f.zone != "":
		z, err := grid.SimZone(f.zone)
		if err != nil {
			return nil, err
		}
		return grid.NewSimulated(z, 1)
	}
	return nil, nil
}
