package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestOpenAIClient: the official Go client, streaming and not, completions
// and chat, gets the reference text and usage; its typed errors carry our
// statuses.
func TestOpenAIClient(t *testing.T) {
	ts := newServer(t, newLocal(t), WithKeys("sk-test"))
	client := openai.NewClient(option.WithBaseURL(ts.URL+"/v1"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("completion", func(t *testing.T) {
		c, err := client.Completions.New(ctx, openai.CompletionNewParams{
			Model:       "stories260K",
			Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
			MaxTokens:   openai.Int(124),
			Temperature: openai.Float(0),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) != 1 || c.Choices[0].Text != reference || c.Choices[0].FinishReason != "length" {
			t.Fatalf("choices %+v", c.Choices)
		}
		if c.Usage.PromptTokens != 5 || c.Usage.CompletionTokens != 124 || c.Usage.TotalTokens != 129 {
			t.Fatalf("usage %+v", c.Usage)
		}
		if !strings.HasPrefix(c.ID, "cmpl-") || c.Model != "stories260K" {
			t.Fatalf("id %q model %q", c.ID, c.Model)
		}
	})
	t.Run("chat", func(t *testing.T) {
		c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:               "stories260K",
			Messages:            []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Once upon a time")},
			MaxCompletionTokens: openai.Int(124),
			Temperature:         openai.Float(0),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) != 1 || c.Choices[0].Message.Content != reference || c.Choices[0].FinishReason != "length" {
			t.Fatalf("choices %+v", c.Choices)
		}
		if c.Usage.CompletionTokens != 124 || c.Usage.PromptTokens != 5 {
			t.Fatalf("usage %+v", c.Usage)
		}
	})
	t.Run("completion stream", func(t *testing.T) {
		s := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{
			Model:       "stories260K",
			Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
			MaxTokens:   openai.Int(124),
			Temperature: openai.Float(0),
		})
		var text strings.Builder
		chunks := 0
		for s.Next() {
			for _, ch := range s.Current().Choices {
				text.WriteString(ch.Text)
			}
			chunks++
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if text.String() != reference || chunks < 10 {
			t.Fatalf("%d chunks: %q", chunks, text.String())
		}
	})
	t.Run("chat stream with usage", func(t *testing.T) {
		s := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:         "stories260K",
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Once upon a time")},
			MaxTokens:     openai.Int(124),
			Temperature:   openai.Float(0),
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		var acc openai.ChatCompletionAccumulator
		for s.Next() {
			acc.AddChunk(s.Current())
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != reference || acc.Choices[0].FinishReason != "length" {
			t.Fatalf("accumulated %+v", acc.Choices)
		}
		if acc.Usage.PromptTokens != 5 || acc.Usage.CompletionTokens != 124 {
			t.Fatalf("usage %+v", acc.Usage)
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, err := client.Completions.New(ctx, openai.CompletionNewParams{
			Model: "stories260K", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("x")}, N: openai.Int(2),
		})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Param != "n" {
			t.Fatalf("n=2: %v", err)
		}
		bad := openai.NewClient(option.WithBaseURL(ts.URL+"/v1"), option.WithAPIKey("sk-wrong"), option.WithMaxRetries(0))
		_, err = bad.Models.List(ctx)
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "invalid_api_key" {
			t.Fatalf("wrong key: %v", err)
		}
	})
	t.Run("models", func(t *testing.T) {
		page, err := client.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) != 2 || page.Data[0].ID != "stories260K" || page.Data[0].Object != "model" {
			t.Fatalf("models %+v", page.Data)
		}
	})
}
