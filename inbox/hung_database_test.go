package inbox_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks/inbox"
	"github.com/cakemail-go/webhooks/internal/pgtest"
)

// With every Postgres process stopped, many senders at once each get an
// answer within the acknowledge timeout: 503 with Retry-After, and /healthz
// says 503 too. Once Postgres runs again, deliveries are stored again, and
// every one (Cakemail sends a 503'd one again) is processed exactly once.
func TestHungPostgresAnswersEveryDeliveryInTime(t *testing.T) {
	t.Parallel()
	server := pgtest.Start(t)
	ti := startInbox(t, server.URL(t), nil)

	var (
		mu     sync.Mutex
		bodies [][]byte
		sent   int
	)
	newBody := func() []byte {
		mu.Lock()
		defer mu.Unlock()
		body := payload("Email.Opened", fmt.Sprintf("hung%d@example.com", len(bodies)))
		bodies = append(bodies, body)
		return body
	}
	for range 20 {
		require.Equal(t, http.StatusAccepted, ti.post(newBody(), testSecret))
	}

	thaw := server.Freeze(t)
	frozen := time.Now()
	const senders, freezeFor = 64, 8 * time.Second
	var (
		slowest                        time.Duration
		refused, stored, noRetryAfter  int
		unexpected                     []int
		healthRefused, healthRefusedAt = false, time.Duration(0)
	)
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			for time.Since(frozen) < freezeFor {
				start := time.Now()
				w := ti.postRecorder(newBody())
				took := time.Since(start)
				mu.Lock()
				sent++
				slowest = max(slowest, took)
				switch w.Code {
				case http.StatusServiceUnavailable:
					refused++
					if w.Header().Get("Retry-After") == "" {
						noRetryAfter++
					}
				case http.StatusAccepted:
					stored++ // committed just before the freeze
				default:
					unexpected = append(unexpected, w.Code)
				}
				mu.Unlock()
			}
		})
	}
	for !healthRefused && time.Since(frozen) < freezeFor {
		if ti.get("/healthz").Code == http.StatusServiceUnavailable {
			healthRefused, healthRefusedAt = true, time.Since(frozen)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	thaw()
	t.Logf("Postgres stopped for %s: %d deliveries from %d senders, %d answered 503, %d 202; slowest answer %s; /healthz 503 after %s",
		time.Since(frozen).Round(time.Millisecond), sent, senders, refused, stored, slowest.Round(time.Millisecond), healthRefusedAt.Round(time.Millisecond))
	assert.LessOrEqual(t, slowest, inbox.DefaultAcknowledgeTimeout, "a delivery waited past the acknowledge timeout")
	assert.Greater(t, refused, senders, "the freeze was not felt")
	assert.Zero(t, noRetryAfter, "a 503 without Retry-After")
	assert.Empty(t, unexpected)
	assert.True(t, healthRefused, "/healthz never said 503 while Postgres was stopped")

	// Cakemail sends each delivery again until it is acknowledged.
	thawed := time.Now()
	for _, body := range bodies {
		wg.Go(func() { sendUntilAccepted(t, body, ti) })
	}
	wg.Wait()
	t.Logf("every delivery stored %s after Postgres resumed", time.Since(thawed).Round(time.Millisecond))
	ti.waitCount(t, int64(len(bodies)), `SELECT count(*) FROM processed_events`)
	for _, body := range bodies {
		assert.EqualValues(t, 1, ti.count(t, countProcessed, sha(body)), "lost or applied twice")
	}
}
