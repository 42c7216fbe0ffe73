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
	if _, ok := m.Meta.Strings("tokenizer.ggml.tokens"); ok {
		t, err := tokenizer.FromGGUF(m.Meta)
		if err != nil {
			return nil, fmt.Errorf("tokenizer of %s: %w", m.Path, err)
		}
		return t, nil
	}
	if m.TokenizerJSON != nil {
		t, err := tokenizer.FromHFJSON(m.TokenizerJSON)
		if err != nil {
			return nil, fmt.Errorf("tokenizer.json of %s: %w", m.Path, err)
		}
		return t, nil
	}
	return nil, errors.New("the model carries no tokenizer (no tokenizer.ggml.* metadata, no tokenizer.json)")
}
