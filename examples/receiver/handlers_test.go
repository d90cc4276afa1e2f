package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The built receiver keeps each contact's newest state: a Contact.Added
// that arrives after the contact's Email.Unsubscribed was applied, a retry
// of an older delivery, never makes the contact mailable again, and a
// delivery sent twice is logged once with one run.
func TestLateContactAddedNeverResubscribes(t *testing.T) {
	t.Parallel()
	r, _ := startReceiver(t, "CAKEMAIL_WEBHOOK_SECRET="+testSecret)
	client := &http.Client{Timeout: 10 * time.Second}
	at := time.Now().Add(-time.Minute).Unix()
	unsubscribed := fmt.Appendf(nil, `{"event":"Email.Unsubscribed","created_on":%d,"data":{"contact_id":501,"email":"a@example.com"}}`, at)
	addedEarlier := fmt.Appendf(nil, `{"event":"Contact.Added","created_on":%d,"data":{"contact_id":"501","email":"a@example.com"}}`, at-120)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(r.dir, "receiver.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	defer db.Close()
	runs := func(body []byte) (n int) {
		db.QueryRow(`SELECT runs FROM events WHERE body_sha256 = ?`, sha(body)).Scan(&n) //nolint:errcheck // 0 until it ran
		return n
	}
	send := func(body []byte) {
		code, err := deliver(context.Background(), client, r.port, body)
		require.NoError(t, err)
		require.Contains(t, []int{http.StatusAccepted, http.StatusOK}, code)
	}
	send(unsubscribed)
	send(unsubscribed) // Cakemail's duplicate
	require.Eventually(t, func() bool { return runs(unsubscribed) == 1 }, 15*time.Second, 20*time.Millisecond)
	send(addedEarlier) // older, arriving late
	var completed int
	require.Eventually(t, func() bool {
		return db.QueryRow(`SELECT count(*) FROM river_job WHERE state = 'completed'`).Scan(&completed) == nil && completed == 2
	}, 15*time.Second, 20*time.Millisecond)
	var mailable bool
	require.NoError(t, db.QueryRow(`SELECT mailable FROM contacts WHERE contact_id = '501'`).Scan(&mailable))
	assert.False(t, mailable, "a late Contact.Added made an unsubscribed contact mailable again")
	assert.Zero(t, runs(addedEarlier), "the stale event's handler ran")
}
