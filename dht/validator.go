package dht

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Defaults of the validation window.
const (
	// DefaultClockSkew is how far a record may be past its expiry and still be
	// accepted, because the signer's clock and ours disagree a little.
	DefaultClockSkew = 30 * time.Second
	// DefaultMaxTTL is the longest a record may claim to live. A node re-announces
	// every few minutes, so no honest record needs more; a longer one would let
	// a dead node linger in everyone's view.
	DefaultMaxTTL = time.Hour
)

// ErrBadKey: a DHT key in the imece namespace is not /imece/node/<peerID>.
var ErrBadKey = errors.New("dht: bad node record key")

// Validator checks node records for the DHT namespace Namespace and for the
// model topics. It implements the go-libp2p-record Validator interface, so the
// DHT refuses to store or return a record that fails it.
type Validator struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ClockSkew is the expiry allowance (DefaultClockSkew in a Discovery).
	ClockSkew time.Duration
	// MaxTTL bounds how far in the future a record may expire (DefaultMaxTTL
	// in a Discovery); zero means unbounded.
	MaxTTL time.Duration
}

func (v Validator) now() time.Time {
	if v.Now == nil {
		return time.Now()
	}
	return v.Now()
}

// Open decodes a record and checks everything that does not depend on where it
// was found: size, canonical encoding, signature and expiry.
func (v Validator) Open(b []byte) (*Record, error) {
	r, err := UnmarshalRecord(b)
	if err != nil {
		return nil, err
	}
	if err := r.Verify(); err != nil {
		return nil, err
	}
	now := v.now()
	if now.After(r.ExpiresAt().Add(v.ClockSkew)) {
		return nil, fmt.Errorf("%w: at %s", ErrExpired, r.ExpiresAt().UTC().Format(time.RFC3339))
	}
	if v.MaxTTL > 0 && r.ExpiresAt().After(now.Add(v.MaxTTL+v.ClockSkew)) {
		return nil, fmt.Errorf("%w: at %s", ErrExpiryTooFar, r.ExpiresAt().UTC().Format(time.RFC3339))
	}
	return r, nil
}

// Validate accepts value under key if it is a valid record whose signer is the
// peer the key names. Only a node can write its own key.
func (v Validator) Validate(key string, value []byte) error {
	p, err := peerFromKey(key)
	if err != nil {
		return err
	}
	r, err := v.Open(value)
	if err != nil {
		return err
	}
	if r.Peer != p {
		return ErrKeyMismatch
	}
	return nil
}

// Select picks the record to keep among values for one key: the highest
// sequence number; between equal sequences (a signer that equivocated), the
// later expiry, then the bytewise smallest encoding. The rule is deterministic
// so every DHT node converges on the same record. Invalid values are never
// selected.
func (v Validator) Select(key string, values [][]byte) (int, error) {
	best := -1
	var bestRec *Record
	for i, b := range values {
		if v.Validate(key, b) != nil {
			continue
		}
		r, _ := UnmarshalRecord(b)
		if best < 0 || better(r, b, bestRec, values[best]) {
			best, bestRec = i, r
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("%w: no valid record among %d", ErrMalformed, len(values))
	}
	return best, nil
}

// better reports whether record a (encoded as ab) wins over b (encoded as bb).
func better(a *Record, ab []byte, b *Record, bb []byte) bool {
	if a.Seq != b.Seq {
		return a.Seq > b.Seq
	}
	if a.Expires != b.Expires {
		return a.Expires > b.Expires
	}
	return bytes.Compare(ab, bb) < 0
}

// peerFromKey parses /imece/node/<peerID>.
func peerFromKey(key string) (peer.ID, error) {
	s, ok := strings.CutPrefix(key, nodeKeyPrefix)
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	p, err := peer.Decode(s)
	if err != nil || p.String() != s {
		return "", fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	return p, nil
}
