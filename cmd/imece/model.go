package main

import "github.com/spf13/cobra"

func (a *app) modelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Inspect and synthesize model files",
	}
	return cmd
}
