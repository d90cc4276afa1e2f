package webhooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

// pagedServer serves total webhooks, perPage at a time, from pre-encoded pages,
// and one webhook with its signature on GET /webhooks/{id}, so that the
// benchmarks measure the client rather than the server.
func pagedServer(tb testing.TB, total, perPage int) *httptest.Server {
	tb.Helper()
	var pages [][]byte
	for first := 0; first < total; first += perPage {
		data := make([]map[string]any, 0, perPage)
		for i := first; i < min(first+perPage, total); i++ {
			data = append(data, wireHook("wh_"+strconv.Itoa(i)))
		}
		b, err := json.Marshal(map[string]any{"pagination": map[string]int{"page": len(pages) + 1, "per_page": perPage, "count": total}, "data": data})
		require.NoError(tb, err)
		pages = append(pages, b)
	}
	one, err := json.Marshal(map[string]any{"id": "wh_1", "data": wireHook("wh_1"),
		"signature": map[string]string{"key": testKey, "hash_function": "sha256"}})
	require.NoError(tb, err)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /webhooks", func(w http.ResponseWriter, r *http.Request) {
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		w.Header().Set("Content-Type", "application/json")
		if page < 1 || page > len(pages) {
			fmt.Fprintf(w, `{"pagination":{"page":%d,"per_page":%d,"count":%d},"data":[]}`, page, perPage, total)
			return
		}
		w.Write(pages[page-1])
	})
	mux.HandleFunc("GET /webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(one)
	})
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	return srv
}

// baselineWebhook is what a hand-written client would decode GET /webhooks/{id} into.
type baselineWebhook struct {
	ID   string `json:"id"`
	Data struct {
		ID              string `json:"id"`
		Status          string `json:"status"`
		Event           string `json:"event"`
		URL             string `json:"url"`
		ArchivedAt      *int64 `json:"archived_at"`
		RateLimit       int    `json:"rate_limit"`
		RateLimitPeriod string `json:"rate_limit_period"`
	} `json:"data"`
	Signature struct {
		Key          string `json:"key"`
		HashFunction string `json:"hash_function"`
	} `json:"signature"`
}

// BenchmarkGet compares Client.Get with the least a hand-written client does:
// one request with the same headers, decoded with encoding/json, on loopback.
func BenchmarkGet(b *testing.B) {
	srv := pagedServer(b, 1, 1)
	ctx := context.Background()

	b.Run("baseline", func(b *testing.B) {
		hc := &http.Client{}
		b.ReportAllocs()
		for range b.N {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/webhooks/wh_1", nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Accept", "application/json")
			req.Header.Set("User-Agent", "baseline")
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := hc.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var w baselineWebhook
			err = json.NewDecoder(resp.Body).Decode(&w)
			resp.Body.Close()
			if err != nil || w.Signature.Key == "" {
				b.Fatal(err)
			}
		}
	})
	b.Run("Client.Get", func(b *testing.B) {
		client, err := webhooks.NewClient(webhooks.WithBaseURL(srv.URL), webhooks.WithAccessToken(testToken))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for range b.N {
			w, err := client.Get(ctx, "wh_1")
			if err != nil || w.Secret == "" {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAll walks 10,000 webhooks in pages of 100 (100 requests per op).
func BenchmarkAll(b *testing.B) {
	const total, perPage = 10_000, 100
	srv := pagedServer(b, total, perPage)
	client, err := webhooks.NewClient(webhooks.WithBaseURL(srv.URL), webhooks.WithAccessToken(testToken))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for range b.N {
		n := 0
		for _, err := range client.All(ctx, &webhooks.ListOptions{PerPage: perPage}) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != total {
			b.Fatalf("walked %d webhooks, want %d", n, total)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*total), "ns/webhook")
}

// TestAllHoldsOnePageAtATime walks 10,000 webhooks and checks that the live
// heap near the end is no bigger than near the start: pages already walked
// are not kept.
func TestAllHoldsOnePageAtATime(t *testing.T) {
	if testing.Short() {
		t.Skip("walks 10,000 webhooks")
	}
	const total, perPage = 10_000, 100
	srv := pagedServer(t, total, perPage)
	client, err := webhooks.NewClient(webhooks.WithBaseURL(srv.URL), webhooks.WithAccessToken(testToken))
	require.NoError(t, err)

	liveHeap := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	var early, late int64
	n := 0
	for _, err := range client.All(context.Background(), &webhooks.ListOptions{PerPage: perPage}) {
		require.NoError(t, err)
		n++
		switch n {
		case 5 * perPage:
			early = liveHeap()
		case total - perPage:
			late = liveHeap()
		}
	}
	require.Equal(t, total, n)
	t.Logf("live heap after 5 pages: %d B; after 99 pages: %d B", early, late)
	// 9,400 webhooks kept would be well over 1 MiB; one page is a few tens of KiB.
	assert.Less(t, late-early, int64(512<<10), "live heap grew by %d bytes over 94 pages", late-early)
}
