// Package webhookstest is an in-memory Cakemail for tests: it serves the
// webhooks and token API on loopback, signs and delivers events the way
// Cakemail does, and injects faults.
//
//	srv := webhookstest.NewServer()
//	defer srv.Close()
//	client, _ := webhooks.NewClient(webhooks.WithBaseURL(srv.URL), webhooks.WithAccessToken(srv.Token()))
//	hook, _ := client.Create(ctx, &webhooks.CreateParams{Event: webhooks.EventEmailOpened, URL: receiver.URL})
//	deliveries, _ := srv.Trigger(ctx, webhooks.EventEmailOpened, map[string]any{"email": "a@example.com"})
//
// It speaks the API as Cakemail's OpenAPI description has it: the same paths,
// status codes, JSON shapes and {"detail": [...]} errors, so clients in any
// language can run against it (see cmd/cakemail-fake).
package webhookstest

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/cakemail-go/webhooks"
)

// The user every Server starts with, and the account it owns.
const (
	DefaultUsername  = "user@example.com"
	DefaultPassword  = "password"
	DefaultAccountID = 1
)

// Server is a fake Cakemail API. Its methods are safe for concurrent use.
//
// Its memory stays bounded however long it runs. Each login (a password,
// refresh or MFA grant, or Token) issues an access token and a refresh token;
// a refresh token works once, and its use issues a new pair. A user holds at
// most 1,000 logins: past that, logins whose access token has expired and
// whose refresh token is used are dropped, then the oldest.
type Server struct {
	// URL is the base URL of the API, such as http://127.0.0.1:49152.
	URL string

	http *httptest.Server
	cfg  config

	mu          sync.Mutex
	users       map[string]*user      // by username
	accessTok   map[string]*session   // by access token
	refreshTok  map[string]*session   // by refresh token, until it is used
	challenges  map[string]*challenge // pending MFA challenges, by id
	hooks       map[string]*hook      // by id
	order       []*hook               // creation order, for listing
	nextAccount int
	faults      []fault
	requests    []Request
	deliveries  []Delivery
	closed      chan struct{}
	deliveryWG  sync.WaitGroup
}

type user struct {
	username, password string
	accounts           []int // the first is the user's own
	mfaCode            string
	sessions           []*session   // oldest first, at most maxSessionsPerUser
	challenges         []*challenge // pending, oldest first, at most maxChallengesPerUser
}

type hook struct {
	id              string
	accountID       int
	event           webhooks.EventType
	url             string
	status          webhooks.Status
	archivedAt      int64 // 0 while active
	rateLimit       int
	rateLimitPeriod webhooks.RateLimitPeriod
	key             string
}

// ServerOption configures a Server.
type ServerOption func(*config)

type config struct {
	tokenLifetime    time.Duration
	deliveryAttempts int
	deliveryBackoff  time.Duration
	deliveryClient   *http.Client
	logLimit         int
	logger           *slog.Logger
}

// DefaultLogLimit is how many requests and deliveries a Server remembers.
const DefaultLogLimit = 10_000

// WithTokenLifetime sets how long access tokens live, one hour by default.
func WithTokenLifetime(d time.Duration) ServerOption {
	return func(c *config) { c.tokenLifetime = d }
}

// WithDeliveryAttempts sets how many times Trigger tries each delivery, 3 by default.
func WithDeliveryAttempts(n int) ServerOption {
	return func(c *config) { c.deliveryAttempts = max(n, 1) }
}

// WithDeliveryBackoff sets the wait before the first redelivery, doubled for
// each one after; 50 ms by default.
func WithDeliveryBackoff(d time.Duration) ServerOption {
	return func(c *config) { c.deliveryBackoff = max(d, 0) }
}

// WithDeliveryClient sets the HTTP client deliveries are sent with, such as an
// httptest TLS server's Client() for https receivers.
func WithDeliveryClient(hc *http.Client) ServerOption {
	return func(c *config) { c.deliveryClient = hc }
}

// WithLogLimit sets how many API requests and how many deliveries Requests and
// Deliveries remember, DefaultLogLimit by default; past it the oldest are
// dropped, so a long-running fake keeps a bounded memory.
func WithLogLimit(n int) ServerOption {
	return func(c *config) { c.logLimit = max(n, 1) }
}

// WithLogger logs one line per API request (method, path, status, duration)
// and one per delivery (event, webhook, URL without its password, status,
// attempts) at info level; never a header, token, secret or body.
func WithLogger(l *slog.Logger) ServerOption {
	return func(c *config) { c.logger = l }
}

func newServer(opts []ServerOption) *Server {
	cfg := config{
		tokenLifetime:    time.Hour,
		deliveryAttempts: 3,
		deliveryBackoff:  50 * time.Millisecond,
		deliveryClient:   &http.Client{Timeout: 5 * time.Second},
		logLimit:         DefaultLogLimit,
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	s := &Server{
		cfg:        cfg,
		users:      map[string]*user{},
		accessTok:  map[string]*session{},
		refreshTok: map[string]*session{},
		challenges: map[string]*challenge{},
		hooks:      map[string]*hook{},
		closed:     make(chan struct{}),
	}
	s.AddUser(DefaultUsername, DefaultPassword)
	return s
}

// NewServer starts a Server on a loopback port. It panics if it cannot listen,
// like httptest.NewServer.
func NewServer(opts ...ServerOption) *Server {
	s := newServer(opts)
	s.http = httptest.NewServer(s.routes())
	s.URL = s.http.URL
	return s
}

// Listen starts a Server on addr, such as "127.0.0.1:8025", for use outside tests.
func Listen(addr string, opts ...ServerOption) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := newServer(opts)
	s.http = httptest.NewUnstartedServer(s.routes())
	s.http.Listener.Close()
	s.http.Listener = ln
	s.http.Start()
	s.URL = s.http.URL
	return s, nil
}

// Close stops the server and any deliveries in flight.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	s.mu.Unlock()
	s.deliveryWG.Wait()
	s.http.Close()
}

// AddUser adds a user who owns one new account, and returns that account's id.
// Adding an existing username replaces that user's password and accounts.
func (s *Server) AddUser(username, password string) (accountID int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextAccount++
	u := &user{username: username, password: password, accounts: []int{s.nextAccount}}
	if old := s.users[username]; old != nil {
		// Its tokens still work: keep them counted against the user's bound.
		u.sessions, u.challenges = old.sessions, old.challenges
	}
	s.users[username] = u
	return s.nextAccount
}

// AddAccount gives an existing user one more (sub-)account, and returns its id.
// It panics if the user does not exist.
func (s *Server) AddAccount(username string) (accountID int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[username]
	if u == nil {
		panic("webhookstest: AddAccount: no user " + username)
	}
	s.nextAccount++
	u.accounts = append(u.accounts, s.nextAccount)
	return s.nextAccount
}

// RequireMFA makes the user's password logins answer with an MFA challenge,
// completed through POST /token/challenge with code. It panics if code is not
// what the API accepts: 6 digits, or a 12-character hexadecimal recovery code.
// A challenge is answered once; it dies after 5 wrong codes or 10 minutes, and
// a user has at most 100 pending (a new one ends the oldest).
func (s *Server) RequireMFA(username, code string) {
	if !mfaCodePattern.MatchString(code) {
		panic("webhookstest: RequireMFA: the code must be 6 digits or 12 hexadecimal characters")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[username]; u != nil {
		u.mfaCode = code
	}
}

// Token returns a new access token for the default user.
func (s *Server) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	access, _ := s.issueLocked(s.users[DefaultUsername], s.cfg.tokenLifetime)
	return access
}

// ExpireTokens makes every access token issued so far expire now, as if time had passed.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.accessTok {
		g.expires = time.Now()
	}
}

// Request is one API call the server received.
type Request struct {
	Method string
	Path   string
	Query  string
}

// Requests returns the API calls received so far, oldest first: the last
// WithLogLimit of them.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Webhook returns a copy of a stored webhook with its secret, whatever its account.
func (s *Server) Webhook(id string) (webhooks.Webhook, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hooks[id]
	if h == nil {
		return webhooks.Webhook{}, false
	}
	return h.public(), true
}

func (h *hook) public() webhooks.Webhook {
	w := webhooks.Webhook{
		ID: h.id, Status: h.status, Event: h.event, URL: h.url, RateLimit: h.rateLimit,
		RateLimitPeriod: h.rateLimitPeriod, Secret: h.key, HashFunction: "sha256",
	}
	if h.archivedAt != 0 {
		w.ArchivedAt = time.Unix(h.archivedAt, 0).UTC()
	}
	return w
}

// appendBounded appends item to log and drops the oldest entries past limit.
func appendBounded[T any](log []T, limit int, items ...T) []T {
	log = append(log, items...)
	if over := len(log) - limit; over > 0 {
		clear(log[:over]) // what they hold can be collected before the array is replaced
		log = log[over:]
	}
	return log
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomString returns n characters from crypto/rand, like Cakemail's ids and keys.
func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("webhookstest: crypto/rand: %v", err))
	}
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}
