package model

import "errors"

// openHF loads a HuggingFace model directory.
func openHF(dir string) (*Model, error) {
	return nil, errors.New("HuggingFace directories are not supported yet")
}
