package main

import (
	"archive/zip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks/internal/testutil"
)

// repo makes a git repository of a module with a nested module, vendored
// code, a symbolic link, an ignored file, an untracked one and a deleted
// one, and returns its directory.
func repo(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		testutil.SkipOrFailInCI(t, "no git to list a module's files with")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":             "module example.com/m\n\ngo 1.23\n",
		"m.go":               "package m\n\n// Answer is the module's.\nconst Answer = 42\n",
		"LICENSE":            "the repository's licence\n",
		".gitignore":         "*.db\n",
		"internal/i/i.go":    "package i\n",
		"vendor/modules.txt": "# vendored\n",
		"vendor/x/y/y.go":    "package y\n",
		"gone.go":            "package m\n",
		"sub/go.mod":         "module example.com/m/sub\n\ngo 1.23\n\nrequire example.com/m v0.1.0\n",
		"sub/sub.go":         "package sub\n\nimport \"example.com/m\"\n\n// Answer is the root module's.\nconst Answer = m.Answer\n",
		"sub/deeper/d.go":    "package deeper\n",
	}
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	}
	run := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	run("init", "-q")
	run("add", ".")
	run("commit", "-q", "-m", "a module and a nested one")
	require.NoError(t, os.Remove(filepath.Join(dir, "gone.go")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "new.go"), []byte("package m\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cache.db"), []byte("ignored"), 0o644))
	require.NoError(t, os.Symlink("m.go", filepath.Join(dir, "link.go")))
	return dir
}

func zipNames(t *testing.T, path string) []string {
	t.Helper()
	r, err := zip.OpenReader(path)
	require.NoError(t, err)
	defer r.Close()
	var names []string
	for _, f := range r.File {
		names = append(names, f.Name)
	}
	return names
}

func TestPublishZipsAsTheGoCommandDoes(t *testing.T) {
	dir := repo(t)
	proxy := t.TempDir()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mod, err := publish(proxy, dir, "v0.1.0", now)
	require.NoError(t, err)
	assert.Equal(t, "example.com/m", mod)
	mod, err = publish(proxy, filepath.Join(dir, "sub"), "v0.1.0", now)
	require.NoError(t, err)
	assert.Equal(t, "example.com/m/sub", mod)

	at := filepath.Join(proxy, "example.com", "m", "@v")
	assert.Equal(t, []string{
		"example.com/m@v0.1.0/.gitignore",
		"example.com/m@v0.1.0/LICENSE",
		"example.com/m@v0.1.0/go.mod",
		"example.com/m@v0.1.0/internal/i/i.go",
		"example.com/m@v0.1.0/m.go",
		"example.com/m@v0.1.0/new.go",
		"example.com/m@v0.1.0/vendor/modules.txt",
	}, zipNames(t, filepath.Join(at, "v0.1.0.zip")), "no nested module, vendored package, link, ignored or deleted file")
	assert.Equal(t, []string{
		"example.com/m/sub@v0.1.0/LICENSE",
		"example.com/m/sub@v0.1.0/deeper/d.go",
		"example.com/m/sub@v0.1.0/go.mod",
		"example.com/m/sub@v0.1.0/sub.go",
	}, zipNames(t, filepath.Join(proxy, "example.com", "m", "sub", "@v", "v0.1.0.zip")), "the repository's LICENSE, which the nested module lacks")

	goMod, err := os.ReadFile(filepath.Join(at, "v0.1.0.mod"))
	require.NoError(t, err)
	assert.Equal(t, "module example.com/m\n\ngo 1.23\n", string(goMod))
	info, err := os.ReadFile(filepath.Join(at, "v0.1.0.info"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"Version":"v0.1.0","Time":"2026-01-02T03:04:05Z"}`, string(info))

	_, err = publish(proxy, dir, "v0.2.0-rc.1", now)
	require.NoError(t, err)
	_, err = publish(proxy, dir, "v0.1.0", now)
	require.NoError(t, err)
	list, err := os.ReadFile(filepath.Join(at, "list"))
	require.NoError(t, err)
	assert.Equal(t, "v0.1.0\nv0.2.0-rc.1\n", string(list))
}

// The go command itself takes the proxy: it checks every zip as it
// extracts it, and builds a program on both modules with no replace.
func TestTheGoCommandBuildsFromTheProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		testutil.SkipOrFailInCI(t, "no go command to fetch from the proxy")
	}
	dir := repo(t)
	proxy := t.TempDir()
	for _, m := range []string{dir, filepath.Join(dir, "sub")} {
		_, err := publish(proxy, m, "v0.1.0", time.Now())
		require.NoError(t, err)
	}
	user := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(user, "go.mod"), []byte("module example.com/user\n\ngo 1.23\n\nrequire example.com/m/sub v0.1.0\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(user, "main.go"), []byte(`package main

import (
	"fmt"

	"example.com/m"
	"example.com/m/sub"
)

func main() { fmt.Println(m.Answer + sub.Answer) }
`), 0o644))
	cmd := exec.Command(goCmd, "run", ".")
	cmd.Dir = user
	cmd.Env = append(os.Environ(),
		"GOPROXY=file://"+filepath.ToSlash(proxy), "GOFLAGS=-mod=mod -modcacherw", "GONOSUMDB=example.com",
		"GOSUMDB=off", "GOWORK=off", "GOMODCACHE="+t.TempDir(), "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.True(t, strings.HasSuffix(string(out), "84\n"), "%s", out)
}

func TestCheckVersion(t *testing.T) {
	for _, c := range []struct {
		mod, version string
		ok           bool
	}{
		{"example.com/m", "v0.1.0", true},
		{"example.com/m", "v1.2.3-rc.1", true},
		{"example.com/m", "v2.0.0", false},
		{"example.com/m/v2", "v2.0.0", true},
		{"example.com/m/v2", "v3.0.0", false},
		{"example.com/m", "0.1.0", false},
		{"example.com/m", "v0.1", false},
		{"example.com/m", "v01.0.0", false},
	} {
		err := checkVersion(c.mod, c.version)
		assert.Equal(t, c.ok, err == nil, "%s@%s: %v", c.mod, c.version, err)
	}
}

func TestFileRules(t *testing.T) {
	assert.True(t, vendored("vendor/x/y.go"))
	assert.False(t, vendored("vendor/modules.txt"))
	assert.False(t, vendored("pkg/vendored.go"))
	assert.Equal(t, "github.com/!burnt!sushi/toml", escape("github.com/BurntSushi/toml"))
	for _, ok := range []string{"a/b.go", "testdata/with space.txt", "é/ü.go", ".gitignore"} {
		assert.NoError(t, checkFilePath(ok), ok)
	}
	for _, bad := range []string{"a//b", "a/../b", "a/b.", "a/b?.go", "a:b", "con/x.go", "aux.txt", "tab\t.go"} {
		assert.Error(t, checkFilePath(bad), bad)
	}
}
