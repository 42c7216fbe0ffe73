package store

import "errors"

// Stand-ins until the ledger's validation lands.
var (
	errGap        = errors.New("ledger: gap")
	errBrokenLink = errors.New("ledger: broken link")
	errFork       = errors.New("ledger: fork")
)
