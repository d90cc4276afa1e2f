package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cakemail-go/webhooks"
)

// The benchmarks measure what a 2xx costs: durable acknowledgements per
// second under concurrent load, and acknowledgement latency at a paced
// 200 deliveries/s, on SQLite and Postgres, beside the old in-memory receiver
// (acknowledged from a channel, lost on a crash) for scale. Workers process
// the jobs meanwhile, as in production.
//
//	go test -run '^$' -bench . -benchtime 3s

func BenchmarkAcknowledge(b *testing.B) {
	for _, target := range benchTargets() {
		b.Run(target.name, func(b *testing.B) {
			url, processed := target.serve(b)
			client := benchClient()
			bodies := benchBodies(b.N)
			b.ResetTimer()
			start := time.Now()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
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
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "acks/s")
			// How fast the workers get through it: the backlog a burst leaves.
			for processed() < int64(b.N) {
				time.Sleep(5 * time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "processed/s")
		})
	}
}

func BenchmarkAcknowledgeLatencyAt200PerSecond(b *testing.B) {
	for _, target := range benchTargets() {
		b.Run(target.name, func(b *testing.B) {
			url, _ := target.serve(b)
			client := benchClient()
			bodies := benchBodies(b.N)
			latencies := make([]time.Duration, b.N)
			b.ResetTimer()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			var wg sync.WaitGroup
			for i := range bodies {
				<-tick.C
				wg.Add(1)
				go func() {
					defer wg.Done()
					start := time.Now()
					if code := post(b, client, url, bodies[i]); code/100 != 2 {
						b.Errorf("delivery answered %d", code)
					}
					latencies[i] = time.Since(start)
				}()
			}
			wg.Wait()
			slices.Sort(latencies)
			b.ReportMetric(ms(latencies[len(latencies)/2]), "p50-ms")
			b.ReportMetric(ms(latencies[len(latencies)*99/100]), "p99-ms")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type benchTarget struct {
	name string
	// serve returns the webhook URL and a count of processed deliveries.
	serve func(b *testing.B) (string, func() int64)
}

func benchTargets() []benchTarget {
	return []benchTarget{
		{"memory", serveMemory},
		{"sqlite", func(b *testing.B) (string, func() int64) {
			db, err := newSQLiteStore(filepath.Join(b.TempDir(), "receiver.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(db.close)
			return serveDurable(b, db)
		}},
		{"postgres", func(b *testing.B) (string, func() int64) {
			db, err := newPostgresStore(context.Background(), postgresURL(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(db.close)
			return serveDurable(b, db)
		}},
	}
}

func serveDurable[TTx any](b *testing.B, db *store[TTx]) (string, func() int64) {
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	v, err := webhooks.NewVerifier([]string{testSecret})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rc, err := newReceiver(ctx, db, newRouter(logger), logger)
	if err != nil {
		b.Fatal(err)
	}
	if err := rc.start(ctx); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(rc.routes(v))
	b.Cleanup(func() {
		srv.Close()
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		rc.stop(stopCtx)
	})
	return srv.URL + "/webhooks/cakemail", func() int64 {
		n, err := db.count(ctx, `SELECT count(*) FROM processed_events`)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
}

// serveMemory is the receiver this one replaced: a bounded channel and an
// in-memory duplicate set, acknowledged before anything is stored.
func serveMemory(b *testing.B) (string, func() int64) {
	v, err := webhooks.NewVerifier([]string{testSecret})
	if err != nil {
		b.Fatal(err)
	}
	queue := make(chan []byte, 1024)
	done := make(chan struct{})
	var processed atomic.Int64
	go func() {
		defer close(done)
		for body := range queue {
			if _, err := webhooks.ParseEvent(body); err != nil {
				panic(err)
			}
			processed.Add(1)
		}
	}()
	var mu sync.Mutex
	seen := map[[32]byte]bool{}
	srv := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := sha256.Sum256(body)
		mu.Lock()
		dup := seen[key]
		seen[key] = true
		mu.Unlock()
		if dup {
			w.WriteHeader(http.StatusOK)
			return
		}
		select {
		case queue <- body:
			w.WriteHeader(http.StatusAccepted)
		default:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	})))
	b.Cleanup(func() { srv.Close(); close(queue); <-done })
	return srv.URL, processed.Load
}

func benchClient() *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
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
			time.Now().Unix(), run, i, i))
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
