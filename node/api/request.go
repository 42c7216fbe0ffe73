package api

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/imece/imece/pipeline/chat"
)

// Defaults where a request is silent, as OpenAI documents them, except top_k
// (not an OpenAI parameter), which defaults to llama.cpp server's 40.
const (
	defaultCompletionTokens = 16 // /v1/completions' max_tokens
	defaultTemperature      = 1.0
	defaultTopP             = 1.0
	defaultTopK             = 40
	maxStops                = 4
)

// requestBody is the JSON of /v1/completions and /v1/chat/completions.
// Fields OpenAI defines that this server cannot honour are rejected, not
// ignored; frequency_penalty and presence_penalty are accepted and ignored
// (OpenAI's additive penalties have no faithful counterpart in llama.cpp's
// multiplicative repeat penalty, which this sampler implements).
type requestBody struct {
	Model               string          `json:"model"`
	Prompt              json.RawMessage `json:"prompt"`
	Messages            []messageBody   `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	TopK                *int            `json:"top_k"`
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N                *int            `json:"n"`
	User             string          `json:"user"`
	FrequencyPenalty *float64        `json:"frequency_penalty"`
	PresencePenalty  *float64        `json:"presence_penalty"`
	Logprobs         json.RawMessage `json:"logprobs"`
	TopLogprobs      *int            `json:"top_logprobs"`
	Echo             bool            `json:"echo"`
	Suffix           *string         `json:"suffix"`
	BestOf           *int            `json:"best_of"`
	Tools            json.RawMessage `json:"tools"`
}

type messageBody struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// paramError is a 400 naming the parameter at fault.
type paramError struct{ param, msg string }

func bad(param, format string, args ...any) *paramError {
	return &paramError{param, fmt.Sprintf(format, args...)}
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

func (b *requestBody) toRequest(isChat bool) (*Request, *paramError) {
	req := &Request{Model: b.Model, User: b.User, Seed: b.Seed}
	if isChat {
		if len(b.Messages) == 0 {
			return nil, bad("messages", "messages must be a non-empty array")
		}
		if !isNull(b.Prompt) {
			return nil, bad("prompt", "prompt is for /v1/completions; chat takes messages")
		}
		for i, m := range b.Messages {
			msg, err := m.parse(i)
			if err != nil {
				return nil, err
			}
			req.Messages = append(req.Messages, msg)
		}
	} else {
		if b.Messages != nil {
			return nil, bad("messages", "messages are for /v1/chat/completions; completions take a prompt")
		}
		p, err := parsePrompt(b.Prompt)
		if err != nil {
			return nil, err
		}
		req.Prompt = p
	}
	switch {
	case b.N != nil && *b.N != 1:
		return nil, bad("n", "n must be 1: this server returns one choice per request")
	case b.BestOf != nil && *b.BestOf != 1:
		return nil, bad("best_of", "best_of must be 1")
	case !isNull(b.Logprobs) && string(b.Logprobs) != "false" && string(b.Logprobs) != "0":
		return nil, bad("logprobs", "logprobs are not supported")
	case b.TopLogprobs != nil:
		return nil, bad("top_logprobs", "logprobs are not supported")
	case b.Echo:
		return nil, bad("echo", "echo is not supported")
	case b.Suffix != nil && *b.Suffix != "":
		return nil, bad("suffix", "suffix (insertion) is not supported")
	case !isNull(b.Tools) && string(b.Tools) != "[]":
		return nil, bad("tools", "tools are not supported")
	}
	if b.MaxTokens != nil && b.MaxCompletionTokens != nil && *b.MaxTokens != *b.MaxCompletionTokens {
		return nil, bad("max_tokens", "max_tokens and max_completion_tokens disagree")
	}
	maxTokens := b.MaxTokens
	if maxTokens == nil {
		maxTokens = b.MaxCompletionTokens
	}
	switch {
	case maxTokens != nil && *maxTokens < 1:
		return nil, bad("max_tokens", "max_tokens must be at least 1, got %d", *maxTokens)
	case maxTokens != nil:
		req.MaxTokens = *maxTokens
	case !isChat:
		req.MaxTokens = defaultCompletionTokens
	}
	req.Temperature, req.TopP, req.TopK = defaultTemperature, defaultTopP, defaultTopK
	if t := b.Temperature; t != nil {
		if !(*t >= 0 && *t <= 2) {
			return nil, bad("temperature", "temperature must be between 0 and 2, got %v", *t)
		}
		req.Temperature = *t
	}
	if p := b.TopP; p != nil {
		if !(*p > 0 && *p <= 1) {
			return nil, bad("top_p", "top_p must be in (0, 1], got %v", *p)
		}
		req.TopP = *p
	}
	if k := b.TopK; k != nil {
		if *k < 0 {
			return nil, bad("top_k", "top_k must not be negative, got %d", *k)
		}
		req.TopK = *k
	}
	for name, v := range map[string]*float64{"frequency_penalty": b.FrequencyPenalty, "presence_penalty": b.PresencePenalty} {
		if v != nil && !(*v >= -2 && *v <= 2) {
			return nil, bad(name, "%s must be between -2 and 2, got %v", name, *v)
		}
	}
	stops, perr := parseStop(b.Stop)
	if perr != nil {
		return nil, perr
	}
	req.Stop = stops
	return req, nil
}

func parsePrompt(raw json.RawMessage) (string, *paramError) {
	if isNull(raw) {
		return "", bad("prompt", "prompt is required")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return "", bad("prompt", "prompt must not be empty")
		}
		return s, nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return "", bad("prompt", "prompt must be a string or an array of one string")
	}
	if len(list) != 1 {
		return "", bad("prompt", "prompt must hold exactly one string, got %d entries (batches are not supported)", len(list))
	}
	if json.Unmarshal(list[0], &s) != nil {
		return "", bad("prompt", "prompt must be text: token arrays are not supported")
	}
	if s == "" {
		return "", bad("prompt", "prompt must not be empty")
	}
	return s, nil
}

func parseStop(raw json.RawMessage) ([]string, *paramError) {
	if isNull(raw) {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var list []string
	if json.Unmarshal(raw, &list) != nil {
		return nil, bad("stop", "stop must be a string or an array of strings")
	}
	if len(list) > maxStops {
		return nil, bad("stop", "at most %d stop sequences, got %d", maxStops, len(list))
	}
	var out []string
	for _, s := range list {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

func (m messageBody) parse(i int) (chat.Message, *paramError) {
	param := fmt.Sprintf("messages[%d]", i)
	role := m.Role
	switch role {
	case "system", "user", "assistant":
	case "developer": // OpenAI's newer name for system
		role = "system"
	case "":
		return chat.Message{}, bad(param+".role", "role is required")
	default:
		return chat.Message{}, bad(param+".role", "role %q is not supported (system, user or assistant)", m.Role)
	}
	if isNull(m.Content) {
		if role == "assistant" {
			return chat.Message{Role: role}, nil
		}
		return chat.Message{}, bad(param+".content", "content is required")
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return chat.Message{Role: role, Content: s}, nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if json.Unmarshal(m.Content, &parts) != nil {
		return chat.Message{}, bad(param+".content", "content must be a string or an array of text parts")
	}
	var b strings.Builder
	for j, p := range parts {
		if p.Type != "text" || p.Text == nil {
			return chat.Message{}, bad(fmt.Sprintf("%s.content[%d]", param, j), "only text parts are supported, got type %q", p.Type)
		}
		b.WriteString(*p.Text)
	}
	return chat.Message{Role: role, Content: b.String()}, nil
}
