package pipeline

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/pipeline/model"
	"github.com/imece/imece/pipeline/tokenizer"
)

// Limits of the model protocol: a request is a CID; a response a manifest (at most
// tens of thousands of tensor entries) and a tokenizer (a large vocabulary).
const (
	maxCIDBytes       = 128
	maxManifestBytes  = 32 << 20
	maxTokenizerBytes = 64 << 20
	modelInfoTimeout  = 30 * time.Second
)

// Status codes of a model protocol response.
const (
	modelInfoOK      = 0
	modelInfoUnknown = 1
)

// ErrUnknownModel means the peer asked does not have the model.
var ErrUnknownModel = errors.New("peer does not serve the model")

// ModelInfo is what a light client needs to generate with a model it holds no
// weights of: the manifest (configuration and tensor list) and the tokenizer, both
// verified against the model's CID.
type ModelInfo struct {
	CID       cid.Cid
	Manifest  *model.Manifest
	Tokenizer *tokenizer.Tokenizer
	// ChatTemplate is the model's Jinja chat template, "" when it has none. It
	// travels inside the tokenizer blob the manifest commits to, so it is as
	// verified as the tokenizer, and models without one keep their CID.
	ChatTemplate string
}

// ChatTemplateFor is the chat template of a model this process holds (see
// ChatTemplateOf).
func ChatTemplateFor(m *model.Model) string { return ChatTemplateOf(m.Meta, m.TokenizerConfigJSON) }

// ChatTemplateOf finds a model's chat template: GGUF metadata
// tokenizer.chat_template, else tokenizer_config.json's chat_template (a
// string, or a list of named templates of which "default" or the first is
// taken). "" when there is none or the JSON does not parse: a model is usable
// without a template.
func ChatTemplateOf(md model.Metadata, tokenizerConfigJSON []byte) string {
	if s, ok := md.String("tokenizer.chat_template"); ok && s != "" {
		return s
	}
	if len(tokenizerConfigJSON) == 0 {
		return ""
	}
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if json.Unmarshal(tokenizerConfigJSON, &cfg) != nil || len(cfg.ChatTemplate) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(cfg.ChatTemplate, &s) == nil {
		return s
	}
	var named []struct{ Name, Template string }
	if json.Unmarshal(cfg.ChatTemplate, &named) != nil || len(named) == 0 {
		return ""
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template
		}
	}
	return named[0].Template
}

// ModelSource is what a node serves over ModelProtocol: the canonical manifest and
// tokenizer bytes of each model it holds.
type ModelSource func(c cid.Cid) (manifest, tokenizerBlob []byte, ok bool)

// ServeModelInfo answers ModelProtocol requests on h from src until the returned
// function is called.
func ServeModelInfo(h host.Host, src ModelSource, log *slog.Logger) (stop func()) {
	h.SetStreamHandler(ModelProtocol, func(s network.Stream) {
		defer s.Close()
		s.SetDeadline(time.Now().Add(modelInfoTimeout))
		if err := answerModelInfo(s, src); err != nil {
			log.Debug("model info request failed", "peer", s.Conn().RemotePeer(), "err", err)
			s.Reset()
		}
	})
	return func() { h.RemoveStreamHandler(ModelProtocol) }
}

func answerModelInfo(s io.ReadWriter, src ModelSource) error {
	r := bufio.NewReader(io.LimitReader(s, 2+maxCIDBytes))
	var n uint16
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	if n == 0 || n > maxCIDBytes {
		return fmt.Errorf("request CID of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	c, err := cid.Cast(b)
	if err != nil {
		return fmt.Errorf("request CID: %w", err)
	}
	w := bufio.NewWriter(s)
	mf, tok, ok := src(c)
	if !ok {
		w.WriteByte(modelInfoUnknown)
		return w.Flush()
	}
	w.WriteByte(modelInfoOK)
	for _, part := range [][]byte{mf, tok} {
		binary.Write(w, binary.LittleEndian, uint32(len(part)))
		w.Write(part)
	}
	return w.Flush()
}

// FetchModelInfo asks peer p for model c's manifest and tokenizer and checks both
// against c: the manifest must hash to c and the tokenizer to the digest the manifest
// commits to, so a lying peer is caught, not believed.
func FetchModelInfo(ctx context.Context, h host.Host, p peer.ID, c cid.Cid) (*ModelInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, modelInfoTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, p, ModelProtocol)
	if err != nil {
		return nil, fmt.Errorf("model info from %s: %w", p, err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	req := binary.LittleEndian.AppendUint16(nil, uint16(len(c.Bytes())))
	if _, err := s.Write(append(req, c.Bytes()...)); err != nil {
		s.Reset()
		return nil, fmt.Errorf("model info from %s: %w", p, err)
	}
	s.CloseWrite()
	info, err := readModelInfo(bufio.NewReader(s), c)
	if err != nil {
		s.Reset()
		return nil, fmt.Errorf("model info from %s: %w", p, err)
	}
	return info, nil
}

func readModelInfo(r *bufio.Reader, c cid.Cid) (*ModelInfo, error) {
	status, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	switch status {
	case modelInfoOK:
	case modelInfoUnknown:
		return nil, ErrUnknownModel
	default:
		return nil, fmt.Errorf("unknown status %d", status)
	}
	part := func(limit uint32) ([]byte, error) {
		var n uint32
		if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
			return nil, err
		}
		if n > limit {
			return nil, fmt.Errorf("%d bytes exceeds the limit of %d", n, limit)
		}
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	mfb, err := part(maxManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	tokb, err := part(maxTokenizerBytes)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return VerifyModelInfo(c, mfb, tokb)
}

// VerifyModelInfo checks manifest and tokenizer bytes against a model CID and builds
// the tokenizer.
func VerifyModelInfo(c cid.Cid, manifest, tokenizerBlob []byte) (*ModelInfo, error) {
	mf, err := model.ParseManifest(manifest)
	if err != nil {
		return nil, err
	}
	if got := mf.CID(); !got.Equals(c) {
		return nil, fmt.Errorf("manifest hashes to %s, not the requested %s", got, c)
	}
	if sha256.Sum256(tokenizerBlob) != mf.Tokenizer {
		return nil, errors.New("tokenizer does not match the digest in the manifest")
	}
	tok, tmpl, err := tokenizerFromBlob(tokenizerBlob)
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() != mf.Config.VocabSize {
		return nil, fmt.Errorf("tokenizer has %d tokens, the model %d", tok.VocabSize(), mf.Config.VocabSize)
	}
	return &ModelInfo{CID: c, Manifest: mf, Tokenizer: tok, ChatTemplate: tmpl}, nil
}

func tokenizerFromBlob(b []byte) (*tokenizer.Tokenizer, string, error) {
	md, tj, tc, err := model.ParseTokenizerBlob(b)
	if err != nil {
		return nil, "", err
	}
	tok, err := tokenizerFrom(md, tj, "peer")
	return tok, ChatTemplateOf(md, tc), err
}
