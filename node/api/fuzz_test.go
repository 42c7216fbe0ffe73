package api

import (
	"encoding/json"
	"testing"
)

// FuzzRequest: any body a client sends is a request or a 400 naming the
// parameter; never a panic, and an accepted request keeps its bounds.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"stories260K","prompt":"Once upon a time","max_tokens":64,"temperature":0}`,
		`{"prompt":["x"],"stop":["\n","."],"top_p":0.9,"seed":7,"stream":true,"stream_options":{"include_usage":true}}`,
		`{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
		`{"messages":[{"role":"tool","content":null}],"n":2}`,
		`{"prompt":"x","max_tokens":-1,"temperature":3,"top_k":-5,"logprobs":true}`,
		`{"prompt":"x","stop":"","max_completion_tokens":1}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, isChat bool) {
		var body requestBody
		if json.Unmarshal(data, &body) != nil {
			return
		}
		req, perr := body.toRequest(isChat)
		if perr != nil {
			if perr.msg == "" {
				t.Fatalf("an error without a message for %q", data)
			}
			return
		}
		if req == nil {
			t.Fatalf("no request and no error for %q", data)
		}
	})
}
