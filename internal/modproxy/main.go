// Command modproxy writes a file-based Go module proxy holding this
// repository's modules at the versions given, each zipped as the go command
// zips a module fetched from a tag: so that a build with
// GOPROXY=file://DIR sees the modules exactly as they would be published.
//
//	go run ./internal/modproxy -o DIR . =v0.1.0 inbox=v0.1.0
//
// Each argument is a module's directory and the version to serve it as. The
// files are those git tracks or would track (untracked files that are not
// ignored count, as after a commit); a nested module's files stay out of
// its parent's zip; a module in a subdirectory without a LICENSE gets the
// repository's, as the go command gives it.
package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The go command's limits on a module (golang.org/x/mod/zip).
const (
	maxZipFile = 500 << 20 // the files of a module, uncompressed
	maxGoMod   = 16 << 20
	maxLICENSE = 16 << 20
)

func main() {
	out := flag.String("o", "", "the proxy's directory, created if missing (required)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: modproxy -o DIR MODULE_DIR=VERSION...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	now := time.Now().UTC().Truncate(time.Second)
	for _, arg := range flag.Args() {
		dir, version, ok := strings.Cut(arg, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "modproxy: %q is not MODULE_DIR=VERSION\n", arg)
			os.Exit(2)
		}
		mod, err := publish(*out, dir, version, now)
		if err != nil {
			fmt.Fprintln(os.Stderr, "modproxy:", err)
			os.Exit(1)
		}
		fmt.Printf("%s@%s from %s\n", mod, version, dir)
	}
}

// publish writes the module in dir to the proxy at out as version, and
// returns its path.
func publish(out, dir, version string, now time.Time) (string, error) {
	goMod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", err
	}
	mod := modulePath(goMod)
	if mod == "" {
		return "", fmt.Errorf("%s/go.mod names no module", dir)
	}
	if err := checkVersion(mod, version); err != nil {
		return "", err
	}
	files, err := moduleFiles(dir)
	if err != nil {
		return "", fmt.Errorf("%s: %w", mod, err)
	}
	zipped, err := zipModule(mod, version, files)
	if err != nil {
		return "", fmt.Errorf("%s: %w", mod, err)
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, now})
	if err != nil {
		return "", err
	}
	at := filepath.Join(out, filepath.FromSlash(escape(mod)), "@v")
	if err := os.MkdirAll(at, 0o755); err != nil {
		return "", err
	}
	base := filepath.Join(at, escape(version))
	for name, content := range map[string][]byte{".info": info, ".mod": goMod, ".zip": zipped} {
		if err := os.WriteFile(base+name, content, 0o644); err != nil {
			return "", err
		}
	}
	return mod, addToList(filepath.Join(at, "list"), version)
}

// modulePath returns the path the module directive of a go.mod names.
func modulePath(goMod []byte) string {
	for _, line := range strings.Split(string(goMod), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			rest, _, _ = strings.Cut(rest, "//")
			p := strings.TrimSpace(rest)
			if unquoted, err := strconv.Unquote(p); err == nil {
				p = unquoted
			}
			return p
		}
	}
	return ""
}

var semver = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)

// checkVersion refuses a version the go command would not serve for mod: not
// canonical semver, or a major version its path does not end in.
func checkVersion(mod, version string) error {
	m := semver.FindStringSubmatch(version)
	if m == nil {
		return fmt.Errorf("%s: %q is not a canonical semantic version (vMAJOR.MINOR.PATCH)", mod, version)
	}
	major := m[1]
	suffix := ""
	if i := strings.LastIndex(mod, "/v"); i >= 0 {
		if _, err := strconv.Atoi(mod[i+2:]); err == nil {
			suffix = mod[i+2:]
		}
	}
	switch {
	case suffix == "" && major != "0" && major != "1":
		return fmt.Errorf("%s: version %s needs the module path to end in /v%s", mod, version, major)
	case suffix != "" && suffix != major:
		return fmt.Errorf("%s: version %s does not match the path's major version v%s", mod, version, suffix)
	}
	return nil
}

// file is a file of a module: its path in the zip, and where it is on disk.
type file struct{ name, disk string }

// moduleFiles lists the files of the module in dir, as published from a
// commit of the tree as it is.
func moduleFiles(dir string) ([]file, error) {
	listed, err := git(dir, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", ".")
	if err != nil {
		return nil, err
	}
	var names []string
	nested := map[string]bool{} // directories holding a module of their own
	for _, name := range strings.Split(strings.TrimRight(listed, "\x00"), "\x00") {
		if name == "" {
			continue
		}
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(name)))
		if errors.Is(err, fs.ErrNotExist) {
			continue // tracked, but deleted from the tree
		} else if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			continue // symbolic links and the like: the go command leaves them out
		}
		if d, base := path.Split(name); base == "go.mod" && d != "" {
			nested[strings.TrimSuffix(d, "/")] = true
		}
		names = append(names, name)
	}
	var files []file
	haveLICENSE := false
	for _, name := range names {
		if inNestedModule(name, nested) || vendored(name) {
			continue
		}
		haveLICENSE = haveLICENSE || name == "LICENSE"
		files = append(files, file{name, filepath.Join(dir, filepath.FromSlash(name))})
	}
	if !haveLICENSE {
		// The go command gives a module in a subdirectory the repository's
		// LICENSE when it has none of its own.
		top, err := git(dir, "rev-parse", "--show-toplevel")
		if err != nil {
			return nil, err
		}
		license := filepath.Join(strings.TrimSpace(top), "LICENSE")
		if fi, err := os.Stat(license); err == nil && fi.Mode().IsRegular() {
			files = append(files, file{"LICENSE", license})
		}
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	return files, nil
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// inNestedModule reports whether name is inside one of the nested modules.
func inNestedModule(name string, nested map[string]bool) bool {
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		if nested[d] {
			return true
		}
	}
	return false
}

// vendored reports whether the go command leaves name out as vendored code:
// a file below vendor/ deeper than vendor/ itself (so vendor/modules.txt stays).
func vendored(name string) bool {
	var rest string
	if r, ok := strings.CutPrefix(name, "vendor/"); ok {
		rest = r
	} else if i := strings.Index(name, "/vendor/"); i >= 0 {
		// The go command's own offset here is known to be off (golang/go#31562);
		// module checksums depend on it, so it is reproduced.
		rest = name[len("/vendor/"):]
	} else {
		return false
	}
	return strings.Contains(rest, "/")
}

// zipModule zips files as module mod at version, each under mod@version/.
func zipModule(mod, version string, files []file) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	seen := map[string]string{} // case-folded path -> path
	var total int64
	prefix := mod + "@" + version + "/"
	for _, f := range files {
		if err := checkFilePath(f.name); err != nil {
			return nil, err
		}
		folded := strings.ToLower(f.name)
		if other, dup := seen[folded]; dup {
			return nil, fmt.Errorf("%s and %s differ only in case", other, f.name)
		}
		seen[folded] = f.name
		content, err := os.ReadFile(f.disk)
		if err != nil {
			return nil, err
		}
		total += int64(len(content))
		switch {
		case total > maxZipFile:
			return nil, fmt.Errorf("the module's files exceed %d bytes", maxZipFile)
		case f.name == "go.mod" && len(content) > maxGoMod:
			return nil, fmt.Errorf("go.mod exceeds %d bytes", maxGoMod)
		case f.name == "LICENSE" && len(content) > maxLICENSE:
			return nil, fmt.Errorf("LICENSE exceeds %d bytes", maxLICENSE)
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: prefix + f.name, Method: zip.Deflate})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(content); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkFilePath refuses a path the go command would refuse in a module zip
// (the rules of golang.org/x/mod/module.CheckFilePath, but for Windows short
// names): the go command checks every path again when it unzips.
func checkFilePath(name string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("%q: invalid UTF-8", name)
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == "" || strings.Trim(elem, ".") == "" || strings.HasSuffix(elem, ".") {
			return fmt.Errorf("%q: an empty path element, or one that is or ends in dots", name)
		}
		for _, r := range elem {
			if !fileNameOK(r) {
				return fmt.Errorf("%q: the character %q is not allowed in a module's file names", name, r)
			}
		}
		short, _, _ := strings.Cut(elem, ".")
		if slices.Contains(windowsReserved, strings.ToUpper(short)) {
			return fmt.Errorf("%q: %s is a reserved file name on Windows", name, short)
		}
	}
	return nil
}

// fileNameOK reports whether r may be part of a module's file name: ASCII
// letters, digits and some punctuation, and letters beyond ASCII.
func fileNameOK(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("!#$%&()+,-.=@[]^_{}~ ", r)
	}
	return unicode.IsLetter(r)
}

var windowsReserved = []string{"CON", "PRN", "AUX", "NUL",
	"COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
	"LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9"}

// escape writes a module path or version as the proxy protocol stores it:
// each upper-case letter as '!' and its lower case.
func escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// addToList adds version to the proxy's list of versions in file.
func addToList(file, version string) error {
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	versions := strings.Fields(string(old))
	if !slices.Contains(versions, version) {
		versions = append(versions, version)
	}
	return os.WriteFile(file, []byte(strings.Join(versions, "\n")+"\n"), 0o644)
}
