package pipeline

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/imece/imece/assets"
	"github.com/imece/imece/pipeline/model"
)

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(t *testing.T, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

func TestFetchModelInfo(t *testing.T) {
	m, _ := model.FromGGUF(assets.DefaultModel)
	mf, _ := m.Manifest()
	id, _ := m.CID()
	tok, _ := model.TokenizerBlob(m.Meta, nil, nil)
	server, client := newHost(t), newHost(t)
	connect(t, client, server)
	lie := false
	stop := ServeModelInfo(server, func(c cid.Cid) ([]byte, []byte, bool) {
		if !c.Equals(id) {
			return nil, nil, false
		}
		if lie {
			bad := append([]byte(nil), tok...)
			bad[len(bad)-20] ^= 1
			return mf.Encode(), bad, true
		}
		return mf.Encode(), tok, true
	}, slog.Default())
	defer stop()
	ctx := context.Background()

	info, err := FetchModelInfo(ctx, client, server.ID(), id)
	if err != nil {
		t.Fatal(err)
	}
	if info.Manifest.Config != m.Config || info.Tokenizer.VocabSize() != 512 {
		t.Fatalf("fetched %+v", info.Manifest.Config)
	}
	if got := info.Tokenizer.Encode("Once upon a time", true); len(got) != 5 || got[1] != 403 {
		t.Fatalf("fetched tokenizer encodes %v", got)
	}

	other, _ := cid.Decode("bafkreibrzcxf5rn2yybtyemnicz4kvcvkh7n65bdb3tkqoss2fxlq2aaxe")
	if _, err := FetchModelInfo(ctx, client, server.ID(), other); !errors.Is(err, ErrUnknownModel) {
		t.Fatalf("unknown model: %v", err)
	}
	lie = true
	if _, err := FetchModelInfo(ctx, client, server.ID(), id); err == nil {
		t.Fatal("a tampered tokenizer was accepted")
	}
}

// TestChatTemplateTravels: a GGUF chat template reaches a light client inside
// the verified tokenizer blob; tokenizer_config.json's forms are read too.
func TestChatTemplateTravels(t *testing.T) {
	m, _ := model.FromGGUF(assets.DefaultModel)
	mf, _ := m.Manifest()
	const tmpl = "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"
	var md model.Metadata
	for _, kv := range m.Meta.All() {
		md.Set(kv.Key, kv.Value)
	}
	md.Set("tokenizer.chat_template", tmpl)
	blob, err := model.TokenizerBlob(md, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	with := *mf
	with.Tokenizer = sha256.Sum256(blob)
	info, err := VerifyModelInfo(with.CID(), with.Encode(), blob)
	if err != nil {
		t.Fatal(err)
	}
	if info.ChatTemplate != tmpl {
		t.Fatalf("template %q", info.ChatTemplate)
	}
	plain, _ := model.TokenizerBlob(m.Meta, nil, nil)
	if info, err := VerifyModelInfo(mf.CID(), mf.Encode(), plain); err != nil || info.ChatTemplate != "" {
		t.Fatalf("stories260K: template %q, %v", info.ChatTemplate, err)
	}

	tests := []struct {
		name, config, want string
	}{
		{"string", `{"chat_template": "{{ x }}"}`, "{{ x }}"},
		{"named list", `{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}`, "D"},
		{"list without default", `{"chat_template": [{"name": "a", "template": "A"}]}`, "A"},
		{"none", `{"bos_token": "<s>"}`, ""},
		{"bad JSON", `{"chat_template": `, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ChatTemplateOf(model.Metadata{}, []byte(tt.config)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
