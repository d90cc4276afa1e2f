package webhooks_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

// captureTo writes every request it gets to dir, as received, then passes it
// on: cakemail-webhooks verify --explain FILE reads such a file.
func captureTo(dir string, next http.Handler) http.Handler {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if dump, err := httputil.DumpRequest(r, true); err == nil {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("delivery-%d.http", n.Add(1))), dump, 0o600)
		}
		next.ServeHTTP(w, r)
	})
}

// A request captured before the Verifier holds what it refused: read back,
// it gives the same diagnosis as the refusal.
func TestACapturedDeliveryIsDiagnosedAsTheRefusal(t *testing.T) {
	dir := t.TempDir()
	refusals := make(chan error, 1)
	verifier, err := webhooks.NewVerifier([]string{secret}, webhooks.WithOnReject(func(_ *http.Request, err error) {
		refusals <- err
	}))
	require.NoError(t, err)
	srv := httptest.NewServer(captureTo(dir, verifier.Middleware(http.NotFoundHandler())))
	defer srv.Close()

	sent := []byte(sentBody)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/hooks", bytes.NewReader([]byte(pythonDefault)))
	require.NoError(t, err)
	req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(sent, secret))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the Verifier still reads the body")
	var refused *webhooks.Diagnosis
	require.ErrorAs(t, <-refusals, &refused)

	dump, err := os.ReadFile(filepath.Join(dir, "delivery-1.http"))
	require.NoError(t, err)
	captured, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(dump)))
	require.NoError(t, err)
	body, err := io.ReadAll(captured.Body)
	require.NoError(t, err)
	assert.Equal(t, pythonDefault, string(body))
	d := webhooks.Diagnose(body, captured.Header, []string{secret})
	require.NotNil(t, d)
	assert.Equal(t, webhooks.CauseBodyReserialized, d.Cause)
	assert.Equal(t, refused.String(), d.String())
}
