package pipeline

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
)

// rawSession is a hand-driven stream to a stage, for sending what a client would
// never send.
type rawSession struct {
	t *testing.T
	s network.Stream
	r *FrameReader
}

func rawStream(t *testing.T, client host.Host, srv *meshNode) *rawSession {
	t.Helper()
	connect(t, client, srv.h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.NewStream(ctx, srv.h.ID(), StageProtocol)
	if err != nil {
		t.Fatal(err)
	}
	s.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { s.Reset() })
	return &rawSession{t: t, s: s, r: NewFrameReader(s, 1<<20)}
}

func (rs *rawSession) send(f Frame) {
	rs.t.Helper()
	if err := WriteFrame(rs.s, f); err != nil {
		rs.t.Fatal(err)
	}
}

// expectError reads until an error frame, which must carry code, then expects the
// stream to end.
func (rs *rawSession) expectError(code ErrorCode) *ErrorFrame {
	rs.t.Helper()
	for {
		f, err := rs.r.ReadFrame()
		if err != nil {
			rs.t.Fatalf("want a %s error frame, stream ended: %v", code, err)
		}
		if e, ok := f.(*ErrorFrame); ok {
			if e.Code != code {
				rs.t.Fatalf("error %s (%s), want %s", e.Code, e.Message, code)
			}
			if _, err := rs.r.ReadFrame(); err == nil {
				rs.t.Fatal("stream stays open after an error")
			}
			return e
		}
	}
}

func (ms *mesh) open(first, last, maxLen int) *OpenFrame {
	o := &OpenFrame{Session: SessionID{1, 2, 3}, Model: ms.id.Bytes(), First: first, Last: last, MaxLen: maxLen, DType: ActF32}
	_, priv, _ := ed25519.GenerateKey(nil)
	signTicket(priv, o)
	return o
}

// TestStageRejectsBadPeers: garbage, oversized and out-of-order frames and wrong
// requests get a typed error and a closed stream, and the stage keeps serving
// everyone else.
func TestStageRejectsBadPeers(t *testing.T) {
	ms := newMesh(t)
	whole := ms.serve(0, 5, WithMaxSessions(2))
	client := newHost(t)
	other, _ := cid.Decode("bafkreibrzcxf5rn2yybtyemnicz4kvcvkh7n65bdb3tkqoss2fxlq2aaxe")

	tests := []struct {
		name string
		do   func(rs *rawSession)
		code ErrorCode
	}{
		{"garbage", func(rs *rawSession) { rs.s.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) }, CodeBadRequest},
		{"oversized length", func(rs *rawSession) { rs.s.Write(binary.LittleEndian.AppendUint32(nil, 1<<30)) }, CodeBadRequest},
		{"forward before open", func(rs *rawSession) {
			rs.send(&ForwardFrame{Session: SessionID{1}, Kind: KindTokens, Tokens: []int32{1}})
		}, CodeBadRequest},
		{"unknown model", func(rs *rawSession) {
			o := ms.open(0, 5, 8)
			o.Model = other.Bytes()
			rs.send(o)
		}, CodeNoSuchModel},
		{"range not served", func(rs *rawSession) { rs.send(ms.open(0, 6, 8)) }, CodeRangeNotServed},
		{"forged ticket", func(rs *rawSession) {
			o := ms.open(0, 5, 8)
			o.MaxLen = 9 // not what the client signed
			rs.send(o)
		}, CodeBadRequest},
		{"route not reaching the end", func(rs *rawSession) { rs.send(ms.open(0, 3, 8)) }, CodeBadRequest},
		{"absurd length", func(rs *rawSession) { rs.send(ms.open(0, 5, 1<<30)) }, CodeBadRequest},
		{"out of order", func(rs *rawSession) {
			rs.send(ms.open(0, 5, 8))
			rs.send(&ForwardFrame{Session: SessionID{1, 2, 3}, Pos: 3, Kind: KindTokens, Tokens: []int32{1}})
		}, CodeOutOfOrder},
		{"token outside the vocabulary", func(rs *rawSession) {
			rs.send(ms.open(0, 5, 8))
			rs.send(&ForwardFrame{Session: SessionID{1, 2, 3}, Kind: KindTokens, Tokens: []int32{1, 99999}})
		}, CodeBadRequest},
		{"activations to the first stage", func(rs *rawSession) {
			rs.send(ms.open(0, 5, 8))
			rs.send(&ForwardFrame{Session: SessionID{1, 2, 3}, Kind: KindActivations, Width: 64, Acts: make([]float32, 64)})
		}, CodeBadRequest},
		{"past the context", func(rs *rawSession) {
			rs.send(ms.open(0, 5, 4))
			rs.send(&ForwardFrame{Session: SessionID{1, 2, 3}, Kind: KindTokens, Tokens: []int32{1, 2, 3}})
			rs.send(&ForwardFrame{Session: SessionID{1, 2, 3}, Pos: 3, Kind: KindTokens, Tokens: []int32{4, 5}})
		}, CodeContextFull},
		{"frame past the session's bound", func(rs *rawSession) {
			rs.send(ms.open(0, 5, 2))
			rs.send(&ForwardFrame{Session: SessionID{1, 2, 3}, Kind: KindTokens, Tokens: make([]int32, 1000)})
		}, CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := rawStream(t, client, whole)
			tt.do(rs)
			rs.expectError(tt.code)
		})
	}
	// After all that, an honest client still gets the reference text.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, _, err := ms.generate(ctx, newHost(t), "Once upon a time", 124, nil)
	if err != nil || got != storiesReference {
		t.Fatalf("after the bad peers: %v %q", err, got)
	}
}

// TestStageLimits: sessions beyond the limit are refused as busy, and an idle
// session is dropped with a clear error.
func TestStageLimits(t *testing.T) {
	ms := newMesh(t)
	srv := ms.serve(0, 5, WithMaxSessions(1), WithIdleTimeout(300*time.Millisecond))
	client := newHost(t)
	first := rawStream(t, client, srv)
	first.send(ms.open(0, 5, 8))
	if f, err := first.r.ReadFrame(); err != nil || f.Type() != FrameTypeReady {
		t.Fatalf("first session: %v %v", f, err)
	}
	second := rawStream(t, client, srv)
	second.send(ms.open(0, 5, 8))
	second.expectError(CodeBusy)
	e := first.expectError(CodeClosing)
	if e.Message != "idle timeout" {
		t.Fatalf("idle session dropped with %q", e.Message)
	}
	// The slot is free again.
	for deadline := time.Now().Add(5 * time.Second); srv.srv.Sessions() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("idle session still counted")
		}
	}
	third := rawStream(t, client, srv)
	third.send(ms.open(0, 5, 8))
	if f, err := third.r.ReadFrame(); err != nil || f.Type() != FrameTypeReady {
		t.Fatalf("session after the idle one: %v %v", f, err)
	}
	third.send(&CloseFrame{Session: SessionID{1, 2, 3}})
	if _, err := third.r.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Fatalf("close: %v", err)
	}
}

// TestStageKVBudget: a session whose KV cache would not fit the budget is busy.
func TestStageKVBudget(t *testing.T) {
	ms := newMesh(t)
	// stories260K: 5 layers × 2 × 32 floats × 4 bytes = 1280 bytes per position.
	srv := ms.serve(0, 5, WithKVBudget(1280*100))
	rs := rawStream(t, newHost(t), srv)
	rs.send(ms.open(0, 5, 101))
	rs.expectError(CodeBusy)
}
