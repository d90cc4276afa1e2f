package inbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The SQLite database's -wal, the database file or its directory taken away
// under a running inbox, while deliveries keep coming: /healthz turns 503
// within seconds, deliveries get 503 from then on, and the copy the inbox
// saves, put in place as its log says, holds every delivery it
// acknowledged: processed once each by the next inbox, with the refused
// ones Cakemail sends again.
func TestRemovedDatabaseFilesStopAcknowledgements(t *testing.T) {
	faults := []struct {
		name   string
		inject func(path string) error
	}{
		{"write-ahead log removed", func(path string) error { return os.Remove(path + "-wal") }},
		{"database file removed", os.Remove},
		{"database file replaced", func(path string) error {
			if err := os.WriteFile(path+".restored", []byte("another file"), 0o600); err != nil {
				return err
			}
			return os.Rename(path+".restored", path)
		}},
		{"directory renamed", func(path string) error { return os.Rename(filepath.Dir(path), filepath.Dir(path)+".moved") }},
	}
	for _, fault := range faults {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "data", "inbox.db")
			require.NoError(t, os.Mkdir(filepath.Dir(path), 0o700))
			ti := startInbox(t, "sqlite://"+path, nil)

			var (
				mu             sync.Mutex
				acked, refused [][]byte
				detected       atomic.Int64 // UnixNano when /healthz first said 503
				lateAcked      int          // acknowledged though sent after that
				lateRefused    atomic.Int64 // refused, sent after that
				stop           = make(chan struct{})
				wg             sync.WaitGroup
			)
			for s := range 8 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						body := payload("Email.Opened", fmt.Sprintf("s%d-%d@example.com", s, i))
						late := detected.Load() != 0
						code := ti.post(body, testSecret)
						mu.Lock()
						switch code {
						case http.StatusAccepted:
							acked = append(acked, body)
							if late {
								lateAcked++
							}
						case http.StatusServiceUnavailable:
							refused = append(refused, body)
							if late {
								lateRefused.Add(1)
							}
						default:
							t.Errorf("delivery answered %d", code)
						}
						mu.Unlock()
					}
				})
			}
			ti.waitCount(t, 50, `SELECT min(count(*), 50) FROM processed_events`)

			require.NoError(t, fault.inject(path))
			injected := time.Now()
			for ti.get("/healthz").Code != http.StatusServiceUnavailable {
				require.Less(t, time.Since(injected), 5*time.Second, "healthy 5 s after the fault")
				time.Sleep(20 * time.Millisecond)
			}
			detected.Store(time.Now().UnixNano())
			unhealthyAfter := time.Since(injected)
			for lateRefused.Load() < 20 {
				require.Less(t, time.Since(injected), 10*time.Second, "deliveries not refused 10 s after the fault")
				time.Sleep(20 * time.Millisecond)
			}
			close(stop)
			wg.Wait()
			t.Logf("/healthz 503 %s after the fault: %s", unhealthyAfter.Round(time.Millisecond), strings.TrimSpace(ti.get("/healthz").Body.String()))
			t.Logf("%d acknowledged, %d refused", len(acked), len(refused))
			assert.Zero(t, lateAcked, "deliveries acknowledged after /healthz said the files were gone")

			// Do what the log says: stop, put the copy in place, start again.
			var copyPath string
			require.Eventually(t, func() bool {
				copyPath = savedCopy(ti.logs.String())
				return copyPath != ""
			}, 10*time.Second, 20*time.Millisecond, "no copy saved: %s", ti.logs)
			t.Logf("the log: %s", errorLine(ti.logs.String()))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, ti.ib.Stop(ctx))
			for _, f := range []string{path, path + "-wal", path + "-shm"} {
				os.Remove(f)
			}
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
			require.NoError(t, os.Rename(copyPath, path))

			next := startInbox(t, "sqlite://"+path, nil)
			for _, body := range refused {
				sendUntilAccepted(t, body, next)
			}
			all := append(acked, refused...)
			next.waitCount(t, int64(len(all)), `SELECT count(*) FROM processed_events`)
			for _, body := range acked {
				assert.EqualValues(t, 1, next.count(t, countProcessed, sha(body)), "an acknowledged delivery lost or applied twice")
			}
			for _, body := range refused {
				assert.EqualValues(t, 1, next.count(t, countProcessed, sha(body)), "a refused delivery sent again lost or applied twice")
			}
		})
	}
}

// savedCopy is the path of the copy the inbox's log says it saved, or "".
func savedCopy(logs string) string {
	for _, line := range strings.Split(logs, "\n") {
		var entry struct {
			Copy string `json:"copy"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Copy != "" {
			return entry.Copy
		}
	}
	return ""
}

// errorLine is the inbox's ERROR about its database's files.
func errorLine(logs string) string {
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, `"database"`) {
			return line
		}
	}
	return ""
}
