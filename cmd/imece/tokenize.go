package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imece/imece/pipeline"
)

func (a *app) tokenizeCmd() *cobra.Command {
	var (
		path string
		bos  bool
	)
	cmd := &cobra.Command{
		Use:   "tokenize",
		Short: "Print the token ids of stdin",
		Long: `Tokenize reads all of stdin as one text and prints its token ids, space-separated,
on one line, without BOS/EOS unless --bos is given.`,
		Example: `  echo -n "Hello world" | imece tokenize --model tinyllama.gguf`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := openModel(path, a.log)
			if err != nil {
				return err
			}
			defer m.Close()
			tok, err := pipeline.TokenizerFor(m)
			if err != nil {
				return err
			}
			text, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("read stdin: %w", err)
			}
			ids := tok.Encode(string(text), bos)
			var b strings.Builder
			for i, id := range ids {
				if i > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(strconv.Itoa(int(id)))
			}
			b.WriteByte('\n')
			_, err = io.WriteString(a.stdout, b.String())
			return err
		},
	}
	cmd.Flags().StringVar(&path, "model", "", "GGUF file or HuggingFace directory whose tokenizer to use (default: embedded stories260K)")
	cmd.Flags().BoolVar(&bos, "bos", false, "add the BOS/EOS tokens the model's tokenizer adds")
	return cmd
}
