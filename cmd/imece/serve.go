package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imece/imece/node/api"
	"github.com/imece/imece/pipeline"
)

// apiFlags are the flags of the commands that serve the OpenAI-compatible API.
type apiFlags struct {
	addr           string
	keys           string
	fallbackURL    string
	fallbackModel  string
	fallbackKeyEnv string
}

func (f *apiFlags) register(cmd *cobra.Command, fallback bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "api", "", "serve the OpenAI-compatible API at HOST:PORT, e.g. 127.0.0.1:8080 (beyond loopback it needs --api-keys)")
	fl.StringVar(&f.keys, "api-keys", "", "file of API keys, one per line (# comments); clients send Authorization: Bearer KEY")
	if fallback {
		fl.StringVar(&f.fallbackURL, "fallback-url", "", "OpenAI-compatible endpoint (base URL, e.g. http://127.0.0.1:8081/v1) for requests no chain can serve")
		fl.StringVar(&f.fallbackModel, "fallback-model", "", "model name sent to the fallback (default: the request's)")
		fl.StringVar(&f.fallbackKeyEnv, "fallback-key-env", "", "environment variable holding the fallback's API key")
	}
}

// check validates the flags before anything starts, so a node refuses at once.
func (f *apiFlags) check() ([]string, error) {
	if f.addr == "" {
		if f.keys != "" || f.fallbackURL != "" {
			return nil, errors.New("--api-keys and --fallback-url need --api HOST:PORT")
		}
		return nil, nil
	}
	if f.fallbackURL == "" && (f.fallbackModel != "" || f.fallbackKeyEnv != "") {
		return nil, errors.New("--fallback-model and --fallback-key-env need --fallback-url")
	}
	var keys []string
	if f.keys != "" {
		var err error
		if keys, err = api.LoadKeys(f.keys); err != nil {
			return nil, err
		}
	}
	if err := api.CheckExposure(f.addr, len(keys) > 0); err != nil {
		return nil, err
	}
	return keys, nil
}

// fallback builds the fallback client the flags describe, nil without one.
func (f *apiFlags) fallback() (*pipeline.Fallback, error) {
	if f.fallbackURL == "" {
		return nil, nil
	}
	opts := []pipeline.FallbackOption{pipeline.WithFallbackModel(f.fallbackModel)}
	if f.fallbackKeyEnv != "" {
		key := os.Getenv(f.fallbackKeyEnv)
		if key == "" {
			return nil, fmt.Errorf("--fallback-key-env %s: the variable is empty or unset", f.fallbackKeyEnv)
		}
		opts = append(opts, pipeline.WithFallbackKey(key))
	}
	return pipeline.NewFallback(f.fallbackURL, opts...)
}

// serveAPI listens at addr and serves gen until ctx ends; it returns the API's
// base URL and a function that waits for the server to stop.
func (a *app) serveAPI(ctx context.Context, addr string, keys []string, gen api.Generator, opts ...api.Option) (url string, wait func() error, err error) {
	srv, err := api.New(gen, append([]api.Option{api.WithLogger(a.log), api.WithKeys(keys...)}, opts...)...)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("--api: %w", err)
	}
	url = fmt.Sprintf("http://%s/v1", ln.Addr())
	fmt.Fprintf(a.stderr, "imece: API listening on %s\n", url)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	return url, func() error { return <-done }, nil
}

// modelName is the name a model file is served under: its file name without
// the extension, "stories260K" for the embedded model.
func modelName(path string) string {
	if path == "" {
		return "stories260K"
	}
	base := filepath.Base(strings.TrimSuffix(path, string(filepath.Separator)))
	return strings.TrimSuffix(base, filepath.Ext(base))
}

type serveFlags struct {
	api     apiFlags
	model   string
	threads int
	backend string
}

func (a *app) serveCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a whole model in this process through the OpenAI-compatible API",
		Long: `Serve runs a whole model in this process, without the mesh or the ledger (every
request costs 0 GFT), behind the OpenAI-compatible API: GET /v1/models, POST
/v1/completions and POST /v1/chat/completions, streaming included. Useful on its
own, and as the --fallback-url of a node.

It prints the API's base URL on stdout and serves until interrupted.`,
		Example: `  imece serve --api 127.0.0.1:8081
  imece serve --model tinyllama.gguf --api 0.0.0.0:8081 --api-keys keys.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.serve(cmd.Context(), f) },
	}
	cmd.Flags().StringVar(&f.model, "model", "", "GGUF file or HuggingFace directory (default: embedded stories260K)")
	cmd.Flags().IntVar(&f.threads, "threads", 0, "CPU threads (default: all cores)")
	backendFlag(cmd, &f.backend)
	f.api.register(cmd, false)
	return cmd
}

func (a *app) serve(ctx context.Context, f serveFlags) error {
	if f.api.addr == "" {
		return errors.New("--api HOST:PORT is required, e.g. --api 127.0.0.1:8081")
	}
	if f.threads < 0 {
		return fmt.Errorf("--threads must not be negative, got %d", f.threads)
	}
	keys, err := f.api.check()
	if err != nil {
		return err
	}
	m, be, release, err := a.loadModel(f.model, f.threads, f.backend)
	if err != nil {
		return err
	}
	defer release()
	gen, err := api.NewLocal(m, be, api.LocalName(modelName(f.model)), api.LocalLogger(a.log))
	if err != nil {
		return err
	}
	url, wait, err := a.serveAPI(ctx, f.api.addr, keys, gen)
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stdout, url)
	err = wait()
	fmt.Fprintln(a.stderr, "imece: API stopped")
	return err
}
