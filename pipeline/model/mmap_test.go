package model

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestMapFile checks the platform's mapFile (mmap on Unix, a file mapping on
// Windows, a plain read elsewhere) gives the file's bytes and refuses what is not
// a regular file.
func TestMapFile(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("imece\x00\xff"), 100_000) // several pages
	for name, data := range map[string][]byte{"empty": {}, "small": []byte("GGUF"), "big": big} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		path    string
		want    []byte
		wantErr bool
	}{
		{"empty file", filepath.Join(dir, "empty"), []byte{}, false},
		{"small file", filepath.Join(dir, "small"), []byte("GGUF"), false},
		{"several pages", filepath.Join(dir, "big"), big, false},
		{"missing", filepath.Join(dir, "missing"), nil, true},
		{"directory", dir, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, unmap, err := mapFile(tc.path)
			if tc.wantErr {
				if err == nil {
					unmap()
					t.Fatalf("mapped %s", tc.path)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, tc.want) {
				t.Errorf("got %d bytes, want %d, or different ones", len(data), len(tc.want))
			}
			if err := unmap(); err != nil {
				t.Errorf("unmap: %v", err)
			}
		})
	}
}

// TestMapFileOutlivesFile: on Unix the mapping stays readable after the file is
// renamed away and replaced, as a node's does while an operator updates a model.
func TestMapFileOutlivesFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows keeps a mapped file open without delete sharing: it cannot be renamed while mapped")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	if err := os.WriteFile(path, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, unmap, err := mapFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer unmap()
	if err := os.Rename(path, filepath.Join(dir, "old.gguf")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("other"), 0o600); err != nil {
		t.Fatal(err)
	}
	if string(data) != "first" {
		t.Fatalf("mapping reads %q after the file was replaced", data)
	}
}
