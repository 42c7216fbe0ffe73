package pipeline

import (
	"errors"

	"github.com/imece/imece/pipeline/model"
	"github.com/imece/imece/pipeline/tokenizer"
)

func tokenizerFromJSON(m *model.Model) (*tokenizer.Tokenizer, error) {
	return nil, errors.New("tokenizer.json is not supported yet")
}
