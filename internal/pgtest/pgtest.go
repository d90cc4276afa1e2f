// Package pgtest starts one throwaway Postgres server for a test binary: on
// a free loopback port, in a temporary directory, as the postgres user when
// run as root, installing Debian's postgresql package first when initdb is
// missing and the tests run as root. Each test gets a fresh database.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cakemail-go/webhooks/internal/testutil"
)

var (
	pgOnce   sync.Once
	pgServer *postgresServer
	pgSkip   string // why Postgres could not be started, if it could not
	// databases numbers the databases made, so no two get one name.
	databases atomic.Int64
)

// Stop stops the server, if one was started; call it from TestMain after m.Run.
func Stop() {
	if pgServer != nil {
		pgServer.stop()
	}
}

// Server is a Postgres of one test's own, for a test that restarts it.
type Server struct{ s *postgresServer }

// Start starts a Postgres for t alone, stopped when t ends; it skips t, or
// fails it in CI, when Postgres cannot be started here.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := startPostgres()
	if err != nil {
		testutil.SkipOrFailInCI(t, "no Postgres for this test: %v", err)
	}
	t.Cleanup(s.stop)
	return &Server{s}
}

// URL returns the URL of a fresh database on the server.
func (s *Server) URL(t testing.TB) string {
	t.Helper()
	url, err := s.s.newDatabase(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// Restart stops the server with a fast shutdown, which ends every session,
// and starts it again on the same port and data: the fault a database
// restart is.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.s.restart(); err != nil {
		t.Fatalf("restarting Postgres: %v", err)
	}
}

// Freeze stops every process of the server with SIGSTOP, by PID, as a hung
// host would: connections stay open and nothing answers. It returns the
// function that resumes them, which t's end also calls.
func (s *Server) Freeze(t testing.TB) (thaw func()) {
	t.Helper()
	postmaster := s.s.cmd.Process.Pid
	// The postmaster first, so that it forks no backend the list misses.
	pids := []int{postmaster}
	if err := syscall.Kill(postmaster, syscall.SIGSTOP); err != nil {
		t.Fatalf("stopping the postmaster: %v", err)
	}
	children, err := childrenOf(postmaster)
	if err != nil {
		syscall.Kill(postmaster, syscall.SIGCONT)
		t.Fatalf("listing the postmaster's children: %v", err)
	}
	for _, pid := range children {
		if syscall.Kill(pid, syscall.SIGSTOP) == nil {
			pids = append(pids, pid)
		}
	}
	thaw = sync.OnceFunc(func() {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	t.Cleanup(thaw)
	return thaw
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var children []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // it ended meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			children = append(children, child)
		}
	}
	return children, nil
}

// postgresServer is a Postgres started for these tests in a temporary
// directory, on a free loopback port.
type postgresServer struct {
	dir, data, bin string
	port           int
	cred           *syscall.Credential
	cmd            *exec.Cmd
	done           chan struct{}
}

// URL returns the URL of a fresh database on the shared server, or
// skips the test, saying why, when Postgres cannot be started here (in CI it
// fails the test instead).
func URL(t testing.TB) string {
	t.Helper()
	url, err := DatabaseURL(t.Name())
	if err != nil {
		testutil.SkipOrFailInCI(t, "no Postgres for this test: %v", err)
	}
	return url
}

// DatabaseURL creates a fresh database named after name on the shared
// server, starting the server first if need be.
func DatabaseURL(name string) (string, error) {
	pgOnce.Do(func() {
		var err error
		pgServer, err = startPostgres()
		if err != nil {
			pgSkip = err.Error()
			pgServer = nil
		}
	})
	if pgServer == nil {
		return "", errors.New(pgSkip)
	}
	return pgServer.newDatabase(name)
}

func (s *postgresServer) newDatabase(name string) (string, error) {
	name = "t_" + strings.ToLower(name)
	if len(name) > 50 {
		name = name[:50]
	}
	name += "_" + strconv.FormatInt(databases.Add(1), 36) + "_" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, name)
	if err := s.psql("CREATE DATABASE " + name); err != nil {
		return "", fmt.Errorf("creating database %s: %v", name, err)
	}
	return s.url(name), nil
}

// psql runs one statement on the server's postgres database.
func (s *postgresServer) psql(statement string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
		"-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", "postgres", "-d", "postgres", "-c", statement)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, lastLines(out, 3))
	}
	return nil
}

func (s *postgresServer) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// findInitdb looks on PATH, then where Debian's postgresql package puts it.
func findInitdb() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.EvalSymlinks(p)
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		return "", errors.New("initdb not found on PATH or in /usr/lib/postgresql/*/bin")
	}
	sort.Slice(matches, func(i, j int) bool { return pgVersion(matches[i]) > pgVersion(matches[j]) })
	return matches[0], nil
}

func pgVersion(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

func startPostgres() (*postgresServer, error) {
	initdb, err := findInitdb()
	if err != nil && os.Geteuid() == 0 {
		// Debian's package, as scripts/test.sh installs it on a fresh machine.
		for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "postgresql"}} {
			cmd := exec.Command("apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			if out, aerr := cmd.CombinedOutput(); aerr != nil {
				return nil, fmt.Errorf("%v; apt-get %s failed: %v: %s", err, args[0], aerr, lastLines(out, 5))
			}
		}
		initdb, err = findInitdb()
	}
	if err != nil {
		return nil, err
	}
	bin := filepath.Dir(initdb)

	// Postgres refuses to run as root: as root, run it as the postgres user.
	var cred *syscall.Credential
	var asUser []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and there is no postgres user to run Postgres as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	// Under /tmp, which the postgres user can reach whatever TMPDIR says.
	dir, err := os.MkdirTemp("/tmp", "receiver-pg-")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*postgresServer, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(err)
		}
	}
	data := filepath.Join(dir, "data")
	args := append(append([]string{}, asUser...), filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "--encoding=UTF8")
	cmd := exec.Command(args[0], args[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %v: %s", err, lastLines(out, 5)))
	}
	port, err := FreePort()
	if err != nil {
		return fail(err)
	}
	s := &postgresServer{dir: dir, data: data, bin: bin, port: port, cred: cred}
	if err := s.launch(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// launch starts the postmaster and waits until it takes connections.
func (s *postgresServer) launch() error {
	logFile, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	// Started directly (not through runuser) so that its PID is the
	// postmaster's own, which stop signals; Pdeathsig stops it too if this
	// test binary dies first.
	srv := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.data, "-p", strconv.Itoa(s.port),
		"-k", s.dir, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300",
		"-c", "shared_buffers=128MB")
	srv.Stdout, srv.Stderr = logFile, logFile
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("starting postgres: %v", err)
	}
	s.cmd, s.done = srv, make(chan struct{})
	done := s.done
	go func() { srv.Wait(); close(done) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		err := s.psql("SELECT 1")
		if err == nil {
			return nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
			return fmt.Errorf("postgres exited at start: %s", lastLines(log, 5))
		default:
		}
		if time.Now().After(deadline) {
			s.halt()
			return fmt.Errorf("postgres not ready after 20 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// halt asks the postmaster we started for a fast shutdown, by its PID.
func (s *postgresServer) halt() {
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *postgresServer) stop() {
	s.halt()
	os.RemoveAll(s.dir)
}

// restart is a fast shutdown, which ends every session, then a start on the
// same port and data.
func (s *postgresServer) restart() error {
	s.halt()
	return s.launch()
}

// FreePort returns a loopback port nothing listens on.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
