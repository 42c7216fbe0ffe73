package pipeline

import (
	"bytes"
	"context"
	"testing"
)

// FuzzFallbackStream: whatever an upstream streams ends as a result or an
// error, never a panic; what was emitted is text of the chunks, and a stream
// that ended without [DONE] is an error.
func FuzzFallbackStream(f *testing.F) {
	for _, s := range []string{
		"data: {\"choices\":[{\"text\":\"Once\",\"index\":0}]}\n\ndata: {\"choices\":[{\"text\":\" upon\",\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n",
		"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n",
		": keep-alive\nevent: x\ndata: {\"error\":{\"message\":\"boom\"}}\n\n",
		"data: {not json}\n\n",
		"data: {\"choices\":[]}\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var emitted int
		res, err := readFallbackStream(context.Background(), bytes.NewReader(data), func(s string) error {
			emitted += len(s)
			return nil
		})
		if err == nil && !bytes.Contains(data, []byte("[DONE]")) {
			t.Fatalf("a stream without [DONE] ended cleanly: %+v", res)
		}
		if emitted > len(data) {
			t.Fatalf("emitted %d bytes of text from %d bytes of stream", emitted, len(data))
		}
	})
}
