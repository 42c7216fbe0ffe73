package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

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
	if path != "" {
		showHashing(m)
	}
	log.Info("model loaded", "path", m.Path, "arch", m.Config.Arch, "layers", m.Config.Layers,
		"params", m.Params(), "bytes", m.Size(), "took", time.Since(start).Round(time.Millisecond))
	return m, nil
}

// hashBarMin is the smallest model whose hashing gets a bar: below it the
// bar would only flicker.
const hashBarMin = 64 << 20

// showHashing shows, on a terminal, a progress bar while the model's weights
// are hashed for its CID: the slow part of loading a large model, which
// happens on the CID's first use (a volunteer announcing it, model inspect),
// not at load, so commands that never need the CID never pay for it. Off a
// terminal (pipes, tests) it shows nothing.
func showHashing(m *model.Model) {
	if !term.IsTerminal(int(os.Stderr.Fd())) || m.Size() < hashBarMin {
		return
	}
	var bar *progressbar.ProgressBar
	m.ReportIdentify(func(done, total int64) {
		if bar == nil {
			bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionSetDescription("hashing weights"),
				progressbar.OptionShowBytes(true),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish(),
			)
		}
		bar.Set64(done)
		if done == total {
			bar.Finish()
		}
	})
}
