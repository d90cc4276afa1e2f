package inbox

import (
	"fmt"
	"net/http"
	"time"
)

// maxBeatAge is how old the last heartbeat may be while the inbox calls
// itself healthy: a heartbeat is a committed write, so an older one means
// the database is unreachable, full, read-only or frozen.
const maxBeatAge = 3 * heartbeatInterval

// failureMemory is how long a failed commit of a delivery, or one that did
// not finish in time, keeps the inbox unhealthy, heartbeats or not; a later
// commit that succeeds clears it.
const failureMemory = 5 * time.Second

// HealthHandler answers 200 while the inbox stores deliveries, and 503 with
// the reason whenever it would refuse them: not started or stopping, the
// database unreachable, not writable, full or too slow, the last delivery's
// commit failed since the last heartbeat, or the SQLite files it writes were
// removed or replaced. It reads only what the heartbeat, the commits and the
// file checks recorded, so it answers at once whatever the database or the
// filesystem does.
func (ib *Inbox) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := ib.unhealthy(); err != "" {
			w.Header().Set("Retry-After", retryAfter)
			http.Error(w, err, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
}

// unhealthy says why deliveries would be refused now, or "".
func (ib *Inbox) unhealthy() string {
	if !ib.acceptor.accepting.Load() {
		return "not accepting deliveries: not started, or stopping"
	}
	if err := ib.acceptor.refusal(); err != nil {
		return err.Error()
	}
	if age := ib.live.beatAge(); age > maxBeatAge {
		reason := "no heartbeat committed"
		if err := ib.live.lastErr.Load(); err != nil {
			reason = "the database cannot take a write"
		}
		return fmt.Sprintf("%s for %s: the database is unreachable, full, read-only or stalled", reason, age.Round(time.Second))
	}
	// A delivery that could not be stored outweighs a heartbeat for a while:
	// on a full disk a tiny heartbeat may still fit where a delivery does not.
	if f := ib.acceptor.lastFailure.Load(); f != nil && (time.Since(f.at) < failureMemory || f.at.UnixNano() > ib.live.lastBeat.Load()) {
		return f.reason
	}
	return ""
}
