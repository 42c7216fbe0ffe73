package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

func TestExportJSONLines(t *testing.T) {
	s := openTest(t, t.TempDir())
	c := threeChains(t, s)
	var buf bytes.Buffer
	if err := s.Export(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(&buf)
	n := 0
	seen := map[string]bool{}
	for lines.Scan() {
		var e ExportedBlock
		if err := json.Unmarshal(lines.Bytes(), &e); err != nil {
			t.Fatalf("line %d: %v: %s", n+1, err, lines.Text())
		}
		if e.Seq == 1 && e.Prev != "" || e.Seq > 1 && e.Prev == "" || e.ID == "" || e.Kind != "spend" {
			t.Fatalf("line %d: %s", n+1, lines.Text())
		}
		seen[e.ID] = true
		n++
	}
	if n != 60 {
		t.Fatalf("exported %d blocks, want 60", n)
	}
	for _, chain := range c {
		for _, b := range chain {
			if !seen[b.ID().CID().String()] {
				t.Fatalf("block %d of %s not exported", b.Seq, b.Owner)
			}
		}
	}
}

func TestHistoryNewestFirst(t *testing.T) {
	s := openTest(t, t.TempDir())
	c := threeChains(t, s)
	h, err := s.History(c[1][0].Owner, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 5 || h[0].Seq != 20 || h[4].Seq != 16 {
		t.Fatalf("History = %d blocks from %d", len(h), h[0].Seq)
	}
}
