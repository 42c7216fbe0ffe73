package pipeline

import (
	"errors"
	"fmt"

	"github.com/imece/imece/pipeline/model"
	"github.com/imece/imece/pipeline/tokenizer"
)

// TokenizerFor builds the tokenizer a model was trained with: from its GGUF
// metadata, or from the tokenizer.json of a HuggingFace directory.
func TokenizerFor(m *model.Model) (*tokenizer.Tokenizer, error) {
	return tokenizerFrom(m.Meta, m.TokenizerJSON, m.Path)
}

func tokenizerFrom(md model.Metadata, tokenizerJSON []byte, from string) (*tokenizer.Tokenizer, error) {
	if _, ok := md.Strings("tokenizer.ggml.tokens"); ok {
		t, err := tokenizer.FromGGUF(md)
		if err != nil {
			return nil, fmt.Errorf("tokenizer of %s: %w", from, err)
		}
		return t, nil
	}
	if tokenizerJSON != nil {
		t, err := tokenizer.FromHFJSON(tokenizerJSON)
		if err != nil {
			return nil, fmt.Errorf("tokenizer.json of %s: %w", from, err)
		}
		return t, nil
	}
	return nil, errors.New("the model carries no tokenizer (no tokenizer.ggml.* metadata, no tokenizer.json)")
}
