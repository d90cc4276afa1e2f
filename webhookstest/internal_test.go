package webhookstest

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestLogsAreBoundedByDefault serves the requests in process: over the network
// 10,000 of them would take seconds under the race detector.
func TestLogsAreBoundedByDefault(t *testing.T) {
	s := newServer(nil)
	h := s.routes()
	for i := range DefaultLogLimit + 10 {
		req := httptest.NewRequest(http.MethodGet, "/webhooks?n="+strconv.Itoa(i), nil)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	reqs := s.Requests()
	assert.Len(t, reqs, DefaultLogLimit)
	assert.Equal(t, "n=10", reqs[0].Query, "the oldest were dropped")
	assert.Equal(t, "n="+strconv.Itoa(DefaultLogLimit+9), reqs[len(reqs)-1].Query)
}
