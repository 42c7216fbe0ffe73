package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/pipeline/model"
)

// openModel opens the model at path, or the embedded default model when path is
// empty, so the main commands need no flags on a fresh machine.
func openModel(path string, log *slog.Logger) (*model.Model, error) {
	start := time.Now()
	var (
		m   *model.Model
		err error
	)
	if path == "" {
		m, err = model.FromGGUF(assets.DefaultModel)
		if err == nil {
			m.Path = assets.DefaultModelName
		}
	} else {
		m, err = model.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	log.Info("model loaded", "path", m.Path, "arch", m.Config.Arch, "layers", m.Config.Layers,
		"params", m.Params(), "bytes", m.Size(), "took", time.Since(start).Round(time.Millisecond))
	return m, nil
}
