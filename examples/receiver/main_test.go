package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks/internal/pgtest"
	"github.com/cakemail-go/webhooks/internal/testutil"
)

const testSecret = "receiver-test-secret-0123456789abcdef"

// The tests share one throwaway Postgres server and one built receiver
// binary, each made on first use and removed when the test binary ends.
var (
	binOnce   sync.Once
	binPath   string
	binErr    error
	binTmpDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	if binTmpDir != "" {
		os.RemoveAll(binTmpDir)
	}
	os.Exit(code)
}

// receiverBinary builds the receiver once per test binary, with the same
// race setting as the tests.
func receiverBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binTmpDir, binErr = os.MkdirTemp("", "receiver-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binTmpDir, "receiver")
		args := append([]string{"build", "-o", binPath}, raceFlags...)
		if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func sha(body []byte) string {
	return fmt.Sprintf("%x", sha256.Sum256(body))
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// TestSIGTERMStopsCleanly runs the built command as an operator would: it
// serves, keeps its admin port apart, refuses a second process on the same
// SQLite file, and on SIGTERM finishes and exits 0, having logged only JSON
// and no secret.
func TestSIGTERMStopsCleanly(t *testing.T) {
	t.Parallel()
	bin := receiverBinary(t)
	r, adminPort := startReceiver(t, "CAKEMAIL_WEBHOOK_SECRET=old-secret-1234,"+testSecret, "ADMIN_PASSWORD=hunter2-admin")
	defer r.kill()
	port, dir := r.port, r.dir

	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 20 {
		body := []byte(fmt.Sprintf(`{"event":"email.opened","created_on":%d,"data":{"email":"term%d@example.com"}}`, time.Now().Unix(), i))
		code, err := deliver(context.Background(), client, port, body)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, code)
	}

	// The admin port answers only with the password, and the webhook port
	// serves no admin path.
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort)
	resp, err := client.Get(metricsURL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	req, _ := http.NewRequest(http.MethodGet, metricsURL, nil)
	req.SetBasicAuth("admin", "hunter2-admin")
	resp, err = client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = client.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	// A second process on the same SQLite file would break its guarantees.
	second := exec.Command(bin)
	second.Dir = dir
	second.Env = []string{"CAKEMAIL_WEBHOOK_SECRET=" + testSecret, "PORT=0", "ADMIN_ADDR=127.0.0.1:0"}
	out, err := second.CombinedOutput()
	require.Error(t, err, "a second receiver ran on the same SQLite file")
	assert.Contains(t, string(out), "another process is using receiver.db")

	require.NoError(t, r.terminate(), "SIGTERM should end in exit status 0")
	logs, err := os.ReadFile(r.logPath)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(logs)), "\n")
	var last map[string]any
	for _, line := range lines {
		require.NoError(t, json.Unmarshal([]byte(line), &last), "not a JSON log line: %q", line)
	}
	assert.Equal(t, "stopped", last["msg"])
	for _, secret := range []string{testSecret, "old-secret-1234", "hunter2-admin"} {
		assert.NotContains(t, string(logs), secret)
	}
}

// startReceiver starts the built receiver in a directory of its own, on
// free ports (the admin port on 127.0.0.1), with env besides PATH, and waits
// until it is healthy.
func startReceiver(t *testing.T, env ...string) (r *replica, adminPort int) {
	t.Helper()
	dir := t.TempDir()
	port, err := pgtest.FreePort()
	require.NoError(t, err)
	adminPort, err = pgtest.FreePort()
	require.NoError(t, err)
	r = &replica{t: t, bin: receiverBinary(t), dir: dir, port: port, logPath: filepath.Join(dir, "receiver.log"),
		env: append([]string{"PATH=" + os.Getenv("PATH"), fmt.Sprintf("ADMIN_ADDR=127.0.0.1:%d", adminPort)}, env...)}
	r.start()
	if !r.waitHealthy(context.Background()) {
		r.kill()
		t.Fatal("the receiver did not come up")
	}
	return r, adminPort
}

func TestRunRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, env := range map[string]map[string]string{
		"no secret":  {},
		"bad port":   {"CAKEMAIL_WEBHOOK_SECRET": testSecret, "PORT": "http"},
		"bad scheme": {"CAKEMAIL_WEBHOOK_SECRET": testSecret, "DATABASE_URL": "mysql://root:hunter2@x/y"},
		"bad postgres url": {"CAKEMAIL_WEBHOOK_SECRET": testSecret,
			"DATABASE_URL": "postgres://root:hunter2@x:notaport/y"},
		"sqlite dir missing": {"CAKEMAIL_WEBHOOK_SECRET": testSecret,
			"DATABASE_URL": "sqlite://" + filepath.Join(dir, "no", "such", "dir", "r.db")},
		"public admin without a password": {"CAKEMAIL_WEBHOOK_SECRET": testSecret, "ADMIN_ADDR": "0.0.0.0:9091"},
		"admin not host:port":             {"CAKEMAIL_WEBHOOK_SECRET": testSecret, "ADMIN_ADDR": "9091"},
		"admin host with a port":          {"CAKEMAIL_WEBHOOK_SECRET": testSecret, "ADMIN_HOSTS": "admin.example.com:443"},
	} {
		var logs testutil.SyncBuffer
		err := run(context.Background(), func(k string) string { return env[k] }, slog.New(slog.NewJSONHandler(&logs, nil)))
		require.Error(t, err, name)
		assert.NotContains(t, err.Error()+logs.String(), "hunter2", name)
		assert.NotContains(t, err.Error()+logs.String(), testSecret, name)
	}
	_, err := readConfig(func(k string) string {
		return map[string]string{"CAKEMAIL_WEBHOOK_SECRET": testSecret, "ADMIN_ADDR": "0.0.0.0:9091"}[k]
	})
	assert.ErrorContains(t, err, "set ADMIN_PASSWORD")
}

func TestReadConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := readConfig(func(k string) string {
		return map[string]string{"CAKEMAIL_WEBHOOK_SECRET": " old , ,new "}[k]
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"old", "new"}, cfg.secrets)
	assert.Equal(t, "8080", cfg.port)
	assert.Equal(t, "sqlite://receiver.db", cfg.databaseURL)
	assert.Equal(t, "127.0.0.1:9091", cfg.adminAddr)
	cfg, err = readConfig(func(k string) string {
		return map[string]string{"CAKEMAIL_WEBHOOK_SECRET": "s", "ADMIN_ADDR": "0.0.0.0:9091", "ADMIN_PASSWORD": "pw"}[k]
	})
	require.NoError(t, err, "a public admin address is allowed behind a password")
	assert.Equal(t, "0.0.0.0:9091", cfg.adminAddr)
}
