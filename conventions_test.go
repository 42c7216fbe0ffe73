// Package imece_test holds the tests that enforce the project's conventions
// (../shared/STYLE.md) across every package.
package imece_test

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pure lists the packages that must stay pure logic: values in, values out, no
// network and no database (DESIGN.md §1), so they are trivially testable and
// reusable by every validator.
var pure = []string{
	"./kernels",
	"./pipeline/model",
	"./pipeline/tokenizer",
	"./pipeline/llama",
	"./ledger",
}

func TestPurePackagesDoNoIO(t *testing.T) {
	forbidden := []string{"github.com/libp2p/", "github.com/dgraph-io/badger", "net/http"}
	for _, p := range pure {
		out, err := exec.Command("go", "list", "-deps", p).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", p, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s depends on %s", p, dep)
				}
			}
		}
	}
}

// TestEveryPackageHasADocComment: a reader should learn what each package is for,
// and what it deliberately is not, before reading its code.
func TestEveryPackageHasADocComment(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata") {
			return filepath.SkipDir
		}
		pkgs, err := parser.ParseDir(token.NewFileSet(), path, func(fi os.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			return err
		}
		for name, pkg := range pkgs {
			documented := false
			for _, f := range pkg.Files {
				if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
					documented = true
				}
			}
			if !documented {
				t.Errorf("package %s (%s) has no doc comment", name, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
