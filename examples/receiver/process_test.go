package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSIGTERMStopsCleanly runs the built command as an operator would: it
// serves, refuses a second process on the same SQLite file, and on SIGTERM
// finishes and exits 0, having logged only JSON and no secret.
func TestSIGTERMStopsCleanly(t *testing.T) {
	t.Parallel()
	bin := receiverBinary(t)
	dir := t.TempDir()
	port, err := freePort()
	require.NoError(t, err)
	r := &replica{t: t, bin: bin, dir: dir, port: port, logPath: filepath.Join(dir, "receiver.log"),
		env: []string{"CAKEMAIL_WEBHOOK_SECRET=old-secret-1234," + testSecret, "PATH=" + os.Getenv("PATH")}}
	r.start()
	defer r.kill()
	require.True(t, r.waitHealthy(context.Background()), "the receiver did not come up")

	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 20 {
		body := payload("email.opened", fmt.Sprintf("term%d@example.com", i))
		code, err := deliver(context.Background(), client, port, body)
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, code)
	}

	// A second process on the same SQLite file would break its guarantees.
	second := exec.Command(bin)
	second.Dir = dir
	second.Env = []string{"CAKEMAIL_WEBHOOK_SECRET=" + testSecret, "PORT=0"}
	out, err := second.CombinedOutput()
	require.Error(t, err, "a second receiver ran on the same SQLite file")
	assert.Contains(t, string(out), "another receiver is using receiver.db")

	require.NoError(t, r.terminate(), "SIGTERM should end in exit status 0")
	logs, err := os.ReadFile(r.logPath)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(logs)), "\n")
	var last map[string]any
	for _, line := range lines {
		require.NoError(t, json.Unmarshal([]byte(line), &last), "not a JSON log line: %q", line)
	}
	assert.Equal(t, "stopped", last["msg"])
	assert.NotContains(t, string(logs), testSecret)
	assert.NotContains(t, string(logs), "old-secret-1234")
}
