package inbox_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
	"github.com/cakemail-go/webhooks/inbox"
)

// The benchmarks measure what the issues name, over loopback HTTP with the
// sample handler (a row in processed_events per delivery):
//
//   - Burst: 10,000 distinct deliveries from 32 concurrent senders; acks/s
//     is deliveries over the time until the last 2xx, processed/s
//     deliveries over the time until the last effect is committed, and
//     jobs/s the jobs those took. Three ways each: plain; keyed, the sample
//     handler behind an order key (2,000 contacts); and two-subscribers,
//     the sample handler as the default subscriber and as a second one.
//   - LatencyAt200PerSecond: deliveries paced at 200/s; p50 and p99 time to
//     the 2xx.
//
//	go test -run '^$' -bench . -benchtime 1x
//
// With -short the burst is 1,000 deliveries.

const burstSenders = 32

func BenchmarkBurst(b *testing.B) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	variants := []struct {
		name string
		opts []inbox.Option
		jobs int // per delivery
	}{
		{"plain", nil, 1},
		{"keyed", []inbox.Option{inbox.WithOrderKey(benchContactKey)}, 1},
		{"two-subscribers", []inbox.Option{inbox.WithSubscriber("audit", recordingRouter())}, 2},
	}
	for _, db := range databases {
		for _, v := range variants {
			b.Run(db.name+"/"+v.name, func(b *testing.B) {
				var acks, processed float64
				for range b.N {
					a, p := burst(b, db, n, v.jobs, v.opts...)
					acks += a
					processed += p
				}
				b.ReportMetric(acks/float64(b.N), "acks/s")
				b.ReportMetric(processed/float64(b.N), "processed/s")
				b.ReportMetric(float64(v.jobs)*processed/float64(b.N), "jobs/s")
			})
		}
	}
}

// benchContactKey keys the benchmark's deliveries by their contact.
func benchContactKey(e *webhooks.Event) (string, bool) {
	var d webhooks.EmailData
	if err := e.DecodeData(&d); err != nil || d.ContactID == "" {
		return "", false
	}
	return d.ContactID, true
}

func burst(b *testing.B, db database, n, jobsPerDelivery int, opts ...inbox.Option) (acks, processed float64) {
	b.StopTimer()
	ti, url := benchInbox(b, db, opts...)
	client := benchClient()
	bodies := benchBodies(n)
	b.StartTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range burstSenders {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(bodies)) {
					return
				}
				if code := post(b, client, url, bodies[i]); code/100 != 2 {
					b.Errorf("delivery answered %d", code)
					return
				}
			}
		})
	}
	wg.Wait()
	acks = float64(n) / time.Since(start).Seconds()
	require.EventuallyWithT(b, func(c *assert.CollectT) {
		got, err := countRows(b.Context(), ti.db, ti.pg, `SELECT count(*) FROM processed_events`)
		require.NoError(c, err)
		assert.GreaterOrEqual(c, got, int64(n*jobsPerDelivery), "processed in 2 minutes")
	}, 2*time.Minute, 5*time.Millisecond)
	processed = float64(n) / time.Since(start).Seconds()
	b.StopTimer()
	return acks, processed
}

func BenchmarkLatencyAt200PerSecond(b *testing.B) {
	for _, db := range databases {
		b.Run(db.name, func(b *testing.B) {
			_, url := benchInbox(b, db)
			client := benchClient()
			n := max(b.N, 1000)
			bodies := benchBodies(n)
			latencies := make([]time.Duration, n)
			b.ResetTimer()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			var wg sync.WaitGroup
			for i := range bodies {
				<-tick.C
				wg.Go(func() {
					start := time.Now()
					if code := post(b, client, url, bodies[i]); code/100 != 2 {
						b.Errorf("delivery answered %d", code)
					}
					latencies[i] = time.Since(start)
				})
			}
			wg.Wait()
			slices.Sort(latencies)
			b.ReportMetric(ms(latencies[len(latencies)/2]), "p50-ms")
			b.ReportMetric(ms(latencies[len(latencies)*99/100]), "p99-ms")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchInbox serves a fresh inbox over loopback HTTP.
func benchInbox(b *testing.B, db database, opts ...inbox.Option) (*testInbox, string) {
	ti := startInbox(b, db.url(b), nil, opts...)
	srv := httptest.NewServer(ti.h)
	b.Cleanup(srv.Close)
	return ti, srv.URL + "/webhooks/cakemail"
}

func benchClient() *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64},
	}
}

var benchRun atomic.Int64

// benchBodies makes n distinct deliveries of a realistic size.
func benchBodies(n int) [][]byte {
	run := benchRun.Add(1)
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf(`{"event":"Email.Opened","account_id":7,"created_on":%d,"data":{"email":"bench%d-%d@example.com","contact_id":%d,"list_id":12,"user_agent":"Mozilla/5.0 (X11; Linux x86_64)","ip":"192.0.2.1"}}`,
			time.Now().Unix(), run, i, i%2000))
	}
	return out
}

func post(b *testing.B, client *http.Client, url string, body []byte) int {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		b.Error(err)
		return 0
	}
	req.Header.Set("X-Signature", webhooks.Sign(body, testSecret))
	resp, err := client.Do(req)
	if err != nil {
		b.Error(err)
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
