package webhooks_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// snippet is one Go code block of the documentation.
type snippet struct {
	where string
	code  string
}

var readmeGoBlock = regexp.MustCompile("(?s)```go\n(.*?)```")

// readmes are the READMEs whose Go blocks are checked. Only README.md's may
// be whole programs, built in this module; the others' are fragments.
var readmes = []string{"README.md", "inbox/README.md", "inbox/OPERATING.md", "examples/receiver/README.md"}

// docSnippets returns the Go blocks of the READMEs and the code blocks of doc.go.
func docSnippets(t *testing.T) []snippet {
	t.Helper()
	var out []snippet
	for _, name := range readmes {
		readme, err := os.ReadFile(name)
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		for _, m := range readmeGoBlock.FindAllSubmatchIndex(readme, -1) {
			line := 1 + strings.Count(string(readme[:m[0]]), "\n")
			code := string(readme[m[2]:m[3]])
			if name != "README.md" && strings.HasPrefix(code, "package ") {
				t.Errorf("%s:%d: only README.md's programs are built; show a fragment of a test or example", name, line)
				continue
			}
			out = append(out, snippet{fmt.Sprintf("%s:%d", name, line), code})
		}
	}
	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	var block []string
	start := 0
	flush := func() {
		if len(block) > 0 {
			out = append(out, snippet{fmt.Sprintf("doc.go:%d", start), strings.Join(block, "\n") + "\n"})
		}
		block = nil
	}
	for i, l := range strings.Split(string(doc), "\n") {
		if code, ok := strings.CutPrefix(l, "//\t"); ok {
			if block == nil {
				start = i + 1
			}
			block = append(block, strings.TrimPrefix(code, ""))
			continue
		}
		if l == "//" && block != nil {
			block = append(block, "")
			continue
		}
		flush()
	}
	flush()
	return out
}

// testSources returns every _test.go file of the module's root and webhookstest
// packages and of package inbox, and examples/receiver's Go files, with
// indentation stripped, to find snippets drawn from them.
func testSources(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, pattern := range []string{"*_test.go", "webhookstest/*_test.go", "inbox/*_test.go", "examples/receiver/*.go"} {
		files, err := filepath.Glob(pattern)
		require.NoError(t, err)
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			out = append(out, dedent(string(b)))
		}
	}
	return out
}

func dedent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, "\t")
	}
	return strings.Join(lines, "\n")
}

// TestDocSnippetsCompile holds every Go snippet of README.md and doc.go to
// compiling as pasted: a whole program is compiled on its own, and a fragment
// must be drawn, line for line, from a test, an example or one of those programs.
func TestDocSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the README's programs")
	}
	sources := testSources(t)
	snippets := docSnippets(t)
	for _, s := range snippets {
		if strings.HasPrefix(s.code, "package ") {
			sources = append(sources, dedent(s.code)) // compiled below, so fragments may quote it
		}
	}
	var programs []string
	for _, s := range snippets {
		if strings.HasPrefix(s.code, "package ") {
			dir, err := os.MkdirTemp(".", "_snippet-")
			require.NoError(t, err)
			t.Cleanup(func() { os.RemoveAll(dir) })
			require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(s.code), 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "WHERE"), []byte(s.where), 0o644))
			programs = append(programs, "./"+filepath.Base(dir))
			continue
		}
		fragment := strings.TrimSpace(dedent(s.code))
		found := false
		for _, src := range sources {
			if strings.Contains(src, fragment) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s: a fragment that is not a whole program must be copied from a test, an example or a README program:\n%s", s.where, s.code)
		}
	}
	require.GreaterOrEqual(t, len(programs), 2, "the README shows whole programs, built together so none is linked")
	// go build of several packages compiles them and discards the result. It
	// uses this test's race setting, so no second standard library is compiled.
	args := []string{"build"}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, programs...)...).CombinedOutput()
	if err != nil {
		for _, p := range programs {
			where, _ := os.ReadFile(filepath.Join(p, "WHERE"))
			out = []byte(strings.ReplaceAll(string(out), strings.TrimPrefix(p, "./"), string(where)))
		}
		t.Fatalf("README programs do not build:\n%s", out)
	}
}
