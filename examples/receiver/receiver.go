package main

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/cakemail-go/webhooks"
)

// Config sizes the receiver; zero fields take the defaults.
type Config struct {
	QueueSize    int           // deliveries waiting for a worker (default 1024)
	Workers      int           // deliveries processed at once (default 4)
	DedupeWindow time.Duration // how long a delivery is remembered (default 1 h)
}

func (c Config) withDefaults() Config {
	if c.QueueSize <= 0 {
		c.QueueSize = 1024
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = time.Hour
	}
	return c
}

// receiver acknowledges verified deliveries and processes them in the background.
type receiver struct {
	cfg     Config
	log     *slog.Logger
	process func(context.Context, *webhooks.Event) error
	queue   chan *webhooks.Event
	seen    *recentSet
	workers sync.WaitGroup
	// stopOnce guards closing the queue; accepting stops before it closes.
	stopOnce sync.Once
	mu       sync.RWMutex
	stopped  bool
}

func newReceiver(cfg Config, logger *slog.Logger, process func(context.Context, *webhooks.Event) error) *receiver {
	cfg = cfg.withDefaults()
	return &receiver{
		cfg:     cfg,
		log:     logger,
		process: process,
		queue:   make(chan *webhooks.Event, cfg.QueueSize),
		seen:    newRecentSet(cfg.DedupeWindow, time.Now),
	}
}

// Routes serves the webhook behind the verifier's middleware, and the health check.
func (rc *receiver) Routes(v *webhooks.Verifier) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/cakemail", v.Middleware(http.HandlerFunc(rc.accept)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	return mux
}

// Start runs the workers.
func (rc *receiver) Start() {
	for range rc.cfg.Workers {
		rc.workers.Add(1)
		go func() {
			defer rc.workers.Done()
			for event := range rc.queue {
				if err := rc.process(context.Background(), event); err != nil {
					rc.log.Error("processing failed", "event", event.Type, "err", err)
				}
			}
		}()
	}
}

// Drain stops accepting deliveries and waits until every queued one is processed.
func (rc *receiver) Drain() {
	rc.stopOnce.Do(func() {
		rc.mu.Lock()
		rc.stopped = true
		close(rc.queue)
		rc.mu.Unlock()
	})
	rc.workers.Wait()
}

// accept runs only for verified deliveries: the middleware has checked the signature.
func (rc *receiver) accept(w http.ResponseWriter, r *http.Request) {
	event, ok := webhooks.EventFromContext(r.Context())
	if !ok {
		http.Error(w, "no event", http.StatusInternalServerError)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	// Cakemail's deliveries carry no id, so a duplicate is the same signed body again.
	key := sha256.Sum256(body)
	if !rc.seen.Add(key) {
		rc.log.Info("duplicate acknowledged", "event", event.Type)
		w.WriteHeader(http.StatusOK)
		return
	}
	if !rc.enqueue(event) {
		// Forget it, so that Cakemail's retry is processed rather than taken for a duplicate.
		rc.seen.Remove(key)
		rc.log.Warn("queue full: asking Cakemail to retry", "event", event.Type)
		w.Header().Set("Retry-After", "30")
		http.Error(w, "busy, retry later", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// enqueue never blocks: a full queue, or one that is draining, refuses.
func (rc *receiver) enqueue(event *webhooks.Event) bool {
	rc.mu.RLock()
	defer rc.mu.RUnlock()
	if rc.stopped {
		return false
	}
	select {
	case rc.queue <- event:
		return true
	default:
		return false
	}
}

// recentSet remembers keys for a window, pruning expired ones as it goes.
type recentSet struct {
	mu        sync.Mutex
	window    time.Duration
	now       func() time.Time
	seen      map[[sha256.Size]byte]time.Time
	nextPrune time.Time
}

func newRecentSet(window time.Duration, now func() time.Time) *recentSet {
	return &recentSet{window: window, now: now, seen: make(map[[sha256.Size]byte]time.Time)}
}

// Add records key and reports whether it was new within the window.
func (s *recentSet) Add(key [sha256.Size]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if now.After(s.nextPrune) {
		for k, at := range s.seen {
			if now.Sub(at) > s.window {
				delete(s.seen, k)
			}
		}
		s.nextPrune = now.Add(s.window / 10)
	}
	if at, ok := s.seen[key]; ok && now.Sub(at) <= s.window {
		return false
	}
	s.seen[key] = now
	return true
}

// Remove forgets key.
func (s *recentSet) Remove(key [sha256.Size]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.seen, key)
}
