package webhookstest

import (
	"encoding/json"
	"errors"
	"math"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cakemail-go/webhooks"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.handleToken)
	mux.HandleFunc("PUT /token", s.handleRefreshPut)
	mux.HandleFunc("POST /token/challenge", s.handleChallenge)
	mux.HandleFunc("GET /webhooks", s.authed(s.handleList))
	mux.HandleFunc("POST /webhooks", s.authed(s.handleCreate))
	mux.HandleFunc("GET /webhooks/{webhook_id}", s.authed(s.handleGet))
	mux.HandleFunc("PATCH /webhooks/{webhook_id}", s.authed(s.handlePatch))
	mux.HandleFunc("POST /webhooks/{webhook_id}/archive", s.authed(s.handleArchive))
	mux.HandleFunc("POST /webhooks/{webhook_id}/unarchive", s.authed(s.handleUnarchive))
	mux.HandleFunc("POST /_fake/trigger", s.handleTrigger)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"detail": "Not Found"})
	})
	return s.intercept(mux)
}

// apiEventTypes are the events the API accepts: the guide names two more that it does not.
var apiEventTypes = func() map[webhooks.EventType]bool {
	m := map[webhooks.EventType]bool{}
	for _, t := range webhooks.EventTypes() {
		if t != webhooks.EventCampaignSent && t != webhooks.EventContactUnsubscribed {
			m[t] = true
		}
	}
	return m
}()

// detailError is one entry of the API's {"detail": [...]} error body.
type detailError struct {
	Loc  []any  `json:"loc,omitempty"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
	Code int    `json:"code,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeDetail(w http.ResponseWriter, status int, details ...detailError) {
	writeJSON(w, status, map[string]any{"detail": details})
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", "Bearer")
	writeDetail(w, http.StatusUnauthorized, detailError{Code: http.StatusUnauthorized, Msg: msg, Type: "unauthorized"})
}

func invalid(loc []any, msg, typ string) detailError {
	return detailError{Loc: loc, Msg: msg, Type: typ}
}

// authedHandler serves a call made with a valid token, for accountID.
type authedHandler func(w http.ResponseWriter, r *http.Request, accountID int)

// authed checks the bearer token and the account_id query parameter.
func (s *Server) authed(next authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		ss := s.accessTok[strings.TrimSpace(token)]
		var u *user
		if ok && ss != nil && time.Now().Before(ss.expires) {
			u = s.users[ss.username]
		}
		s.mu.Unlock()
		if u == nil {
			unauthorized(w, "Not authenticated")
			return
		}
		account := u.accounts[0]
		if raw := r.URL.Query().Get("account_id"); raw != "" {
			id, err := strconv.Atoi(raw)
			if err != nil || id < 1 {
				writeDetail(w, http.StatusUnprocessableEntity, invalid([]any{"query", "account_id"}, "value is not a valid integer >= 1", "type_error.integer"))
				return
			}
			if !owns(u, id) {
				writeDetail(w, http.StatusForbidden, detailError{Code: http.StatusForbidden, Msg: "You do not have access to this account", Type: "forbidden"})
				return
			}
			account = id
		}
		next(w, r, account)
	}
}

func owns(u *user, account int) bool {
	for _, a := range u.accounts {
		if a == account {
			return true
		}
	}
	return false
}

// tokenResponse is the API's TokenResponse.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Accounts     []int  `json:"accounts"`
}

// handleToken serves POST /token: the password and refresh_token grants, form-encoded.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeDetail(w, http.StatusBadRequest, detailError{Msg: "invalid form body", Type: "bad_request"})
		return
	}
	life := s.cfg.tokenLifetime
	if raw := r.PostForm.Get("expiration_seconds"); raw != "" {
		secs, err := strconv.ParseInt(raw, 10, 64)
		switch {
		case err != nil && !errors.Is(err, strconv.ErrRange):
			writeDetail(w, http.StatusUnprocessableEntity, invalid([]any{"body", "expiration_seconds"}, "value is not a valid integer", "type_error.integer"))
			return
		case secs < 600:
			writeDetail(w, http.StatusUnprocessableEntity, invalid([]any{"body", "expiration_seconds"}, "ensure this value is greater than or equal to 600", "value_error.number.not_ge"))
			return
		}
		// The spec sets no maximum; a lifetime too long for a Duration is
		// clamped to the longest one, and expires_in says so, never wrapping
		// around to a negative number.
		life = time.Duration(min(secs, maxLifetimeSeconds)) * time.Second
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var u *user
	var spent *session // the refresh grant's session, whose refresh token this call uses up
	switch grantType := r.PostForm.Get("grant_type"); grantType {
	case "", "password":
		username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
		if username == "" || password == "" {
			writeDetail(w, http.StatusUnprocessableEntity, invalid([]any{"body", "username"}, "username and password are required", "value_error.missing"))
			return
		}
		u = s.users[username]
		if u == nil || u.password != password {
			unauthorized(w, "Incorrect username or password")
			return
		}
		if u.mfaCode != "" {
			challenge := s.challengeLocked(u)
			// The OpenAPI answers a challenge on 200 (TokenResponse or
			// ChallengeResponse), although its prose says 401; clients should
			// accept both, and webhooks.Client does.
			writeJSON(w, http.StatusOK, map[string]string{"challenge": challenge})
			return
		}
	case "refresh_token":
		spent = s.refreshTok[r.PostForm.Get("refresh_token")]
		if spent != nil {
			u = s.users[spent.username]
		}
		if u == nil {
			unauthorized(w, "Invalid refresh token")
			return
		}
	default:
		writeDetail(w, http.StatusUnprocessableEntity, invalid([]any{"body", "grant_type"}, "value is not a valid enumeration member; permitted: 'password', 'refresh_token'", "type_error.enum"))
		return
	}
	if raw := r.PostForm.Get("account_id"); raw != "" {
		if id, err := strconv.Atoi(raw); err != nil || !owns(u, id) {
			writeDetail(w, http.StatusForbidden, detailError{Code: http.StatusForbidden, Msg: "You do not have access to this account", Type: "forbidden"})
			return
		}
	}
	if spent != nil {
		s.useRefreshLocked(spent) // refresh tokens rotate: this one is replaced
	}
	s.writeTokenLocked(w, u, life)
}

// maxLifetimeSeconds is the longest token lifetime a time.Duration holds.
const maxLifetimeSeconds = int64(math.MaxInt64 / time.Second)

// handleRefreshPut serves PUT /token, the deprecated refresh the OpenAPI still
// describes (refreshToken): a form with refresh_token and an optional
// grant_type that can only be refresh_token. Older clients still call it.
func (s *Server) handleRefreshPut(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeDetail(w, http.StatusBadRequest, detailError{Msg: "invalid form body", Type: "bad_request"})
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "" && gt != "refresh_token" {
		writeDetail(w, http.StatusUnprocessableEntity, invalid([]any{"body", "grant_type"}, "value is not a valid enumeration member; permitted: 'refresh_token'", "type_error.enum"))
		return
	}
	refresh := r.PostForm.Get("refresh_token")
	if refresh == "" {
		writeDetail(w, http.StatusUnprocessableEntity, invalid([]any{"body", "refresh_token"}, "field required", "value_error.missing"))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	spent := s.refreshTok[refresh]
	if spent == nil || s.users[spent.username] == nil {
		unauthorized(w, "Invalid refresh token")
		return
	}
	s.useRefreshLocked(spent) // refresh tokens rotate: this one is replaced
	s.writeTokenLocked(w, s.users[spent.username], s.cfg.tokenLifetime)
}

// mfaCodePattern is the API's ChallengeResponseRequest.code: 6 digits or a
// 12-character hexadecimal recovery code.
var mfaCodePattern = regexp.MustCompile(`^(?:[0-9]{6}|[0-9a-fA-F]{12})$`)

func (s *Server) writeTokenLocked(w http.ResponseWriter, u *user, life time.Duration) {
	access, refresh := s.issueLocked(u, life)
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: access, TokenType: "bearer", ExpiresIn: int(life / time.Second),
		RefreshToken: refresh, Accounts: append([]int(nil), u.accounts...),
	})
}

// handleChallenge serves POST /token/challenge, which finishes an MFA login.
func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Challenge string `json:"challenge"`
		Code      string `json:"code"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	var errs []detailError
	if body.Challenge == "" {
		errs = append(errs, invalid([]any{"body", "challenge"}, "field required", "value_error.missing"))
	}
	if !mfaCodePattern.MatchString(body.Code) {
		errs = append(errs, invalid([]any{"body", "code"}, "the code is 6 digits or a 12-character hexadecimal recovery code", "value_error.str.regex"))
	}
	if len(errs) > 0 {
		writeDetail(w, http.StatusUnprocessableEntity, errs...)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.challenges[body.Challenge]
	var u *user
	if c != nil {
		u = s.users[c.username]
		if u == nil || !time.Now().Before(c.expires) {
			s.endChallengeLocked(c)
			u = nil
		}
	}
	if u == nil {
		unauthorized(w, "Invalid challenge or code")
		return
	}
	if !strings.EqualFold(u.mfaCode, body.Code) { // a recovery code's hex in either case
		// Guessing is bounded: after maxChallengeFailures wrong codes the
		// challenge is gone, and the user must log in again.
		if c.failures++; c.failures >= maxChallengeFailures {
			s.endChallengeLocked(c)
		}
		unauthorized(w, "Invalid challenge or code")
		return
	}
	s.endChallengeLocked(c)
	s.writeTokenLocked(w, u, s.cfg.tokenLifetime)
}

// decodeBody reads a JSON body into v, answering 422 when it cannot.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeDetail(w, http.StatusUnprocessableEntity, invalid([]any{"body"}, "expected a JSON body", "value_error.jsondecode"))
			return false
		}
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(v); err != nil {
		writeDetail(w, http.StatusUnprocessableEntity, invalid([]any{"body"}, "invalid JSON: "+err.Error(), "value_error.jsondecode"))
		return false
	}
	return true
}

// wireWebhook is the API's Webhook schema. archived_at is null while a webhook
// is active: the OpenAPI types it as integer only, but Cakemail's guide (and
// the server) send null, and where the spec is looser than the guides, the
// guides win.
type wireWebhook struct {
	ID              string                   `json:"id"`
	Status          webhooks.Status          `json:"status"`
	Event           webhooks.EventType       `json:"event"`
	URL             string                   `json:"url"`
	ArchivedAt      *int64                   `json:"archived_at"`
	RateLimit       int                      `json:"rate_limit"`
	RateLimitPeriod webhooks.RateLimitPeriod `json:"rate_limit_period"`
}

func (h *hook) wire() wireWebhook {
	ww := wireWebhook{ID: h.id, Status: h.status, Event: h.event, URL: h.url, RateLimit: h.rateLimit, RateLimitPeriod: h.rateLimitPeriod}
	if h.archivedAt != 0 {
		at := h.archivedAt
		ww.ArchivedAt = &at
	}
	return ww
}

// handleList serves GET /webhooks.
func (s *Server) handleList(w http.ResponseWriter, r *http.Request, account int) {
	q := r.URL.Query()
	var errs []detailError
	page := queryInt(q.Get("page"), 1, "page", &errs)
	perPage := queryInt(q.Get("per_page"), 50, "per_page", &errs)
	withArchived := queryBool(q.Get("with_archived"), "with_archived", &errs)
	withCount := queryBool(q.Get("with_count"), "with_count", &errs)
	if len(errs) > 0 {
		writeDetail(w, http.StatusUnprocessableEntity, errs...)
		return
	}
	s.mu.Lock()
	var matching []wireWebhook
	for _, h := range s.order {
		if h.accountID == account && (withArchived || h.status == webhooks.StatusActive) {
			matching = append(matching, h.wire())
		}
	}
	s.mu.Unlock()
	pagination := map[string]int{"page": page, "per_page": perPage}
	if withCount {
		pagination["count"] = len(matching)
	}
	// Pages past the last are empty. No product of page and per_page is
	// formed before page is known to be in range: huge values must not overflow.
	data := []wireWebhook{}
	pages := len(matching) / perPage
	if len(matching)%perPage != 0 {
		pages++
	}
	if page <= pages {
		start := (page - 1) * perPage
		data = matching[start : start+min(perPage, len(matching)-start)]
	}
	writeJSON(w, http.StatusOK, map[string]any{"pagination": pagination, "data": data})
}

func queryInt(raw string, def int, name string, errs *[]detailError) int {
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil {
		*errs = append(*errs, invalid([]any{"query", name}, "value is not a valid integer", "type_error.integer"))
		return def
	}
	if n < 1 {
		*errs = append(*errs, invalid([]any{"query", name}, "ensure this value is greater than or equal to 1", "value_error.number.not_ge"))
	}
	return n
}

// queryBool reads a boolean the way the API's framework does.
func queryBool(raw, name string, errs *[]detailError) bool {
	switch strings.ToLower(raw) {
	case "", "false", "0", "no", "off", "f", "n":
		return false
	case "true", "1", "yes", "on", "t", "y":
		return true
	}
	*errs = append(*errs, invalid([]any{"query", name}, "value could not be parsed to a boolean", "type_error.bool"))
	return false
}

// webhookFields are the writable fields of a create or patch body, checked.
type webhookFields struct {
	event     *webhooks.EventType
	url       *string
	rateLimit *int
	period    *webhooks.RateLimitPeriod
}

// parseFields validates a create or patch body the way the API does.
func parseFields(body map[string]json.RawMessage, create bool) (webhookFields, []detailError) {
	var f webhookFields
	var errs []detailError
	loc := func(field string) []any { return []any{"body", field} }
	if create {
		if raw, ok := body["event"]; !ok || string(raw) == "null" {
			errs = append(errs, invalid(loc("event"), "field required", "value_error.missing"))
		} else {
			var name string
			if json.Unmarshal(raw, &name) != nil || !apiEventTypes[webhooks.EventType(name)] {
				errs = append(errs, invalid(loc("event"), "value is not a valid enumeration member", "type_error.enum"))
			} else {
				t := webhooks.EventType(name)
				f.event = &t
			}
		}
		if _, ok := body["url"]; !ok {
			errs = append(errs, invalid(loc("url"), "field required", "value_error.missing"))
		}
	}
	if raw, ok := body["url"]; ok {
		var u string
		if json.Unmarshal(raw, &u) != nil {
			errs = append(errs, invalid(loc("url"), "str type expected", "type_error.str"))
		} else if err := webhooks.ValidateURL(u); err != nil {
			errs = append(errs, invalid(loc("url"), "invalid or missing URL scheme: "+err.Error(), "value_error.url.scheme"))
		} else {
			f.url = &u
		}
	}
	if raw, ok := body["rate_limit"]; ok {
		var n int
		if json.Unmarshal(raw, &n) != nil {
			errs = append(errs, invalid(loc("rate_limit"), "value is not a valid integer", "type_error.integer"))
		} else if n < 1 {
			errs = append(errs, invalid(loc("rate_limit"), "ensure this value is greater than or equal to 1", "value_error.number.not_ge"))
		} else {
			f.rateLimit = &n
		}
	}
	if raw, ok := body["rate_limit_period"]; ok {
		var p webhooks.RateLimitPeriod
		if json.Unmarshal(raw, &p) != nil || (p != webhooks.PerSecond && p != webhooks.PerMinute) {
			errs = append(errs, invalid(loc("rate_limit_period"), "value is not a valid enumeration member; permitted: 'second', 'minute'", "type_error.enum"))
		} else {
			f.period = &p
		}
	}
	return f, errs
}

// handleCreate serves POST /webhooks.
func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, account int) {
	var body map[string]json.RawMessage
	if !decodeBody(w, r, &body) {
		return
	}
	f, errs := parseFields(body, true)
	if len(errs) > 0 {
		writeDetail(w, http.StatusUnprocessableEntity, errs...)
		return
	}
	h := &hook{
		id: randomString(12), accountID: account, event: *f.event, url: *f.url, status: webhooks.StatusActive,
		rateLimit: 50, rateLimitPeriod: webhooks.PerSecond, key: randomString(40),
	}
	if f.rateLimit != nil {
		h.rateLimit = *f.rateLimit
	}
	if f.period != nil {
		h.rateLimitPeriod = *f.period
	}
	s.mu.Lock()
	s.hooks[h.id] = h
	s.order = append(s.order, h)
	ww := h.wire()
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"id": h.id, "data": ww})
}

// lookup finds the webhook of the path in account, answering 404 when there is none.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, account int) *hook {
	h := s.hooks[r.PathValue("webhook_id")]
	if h == nil || h.accountID != account {
		writeDetail(w, http.StatusNotFound, detailError{Msg: "Webhook not found", Type: "not_found"})
		return nil
	}
	return h
}

// handleGet serves GET /webhooks/{webhook_id}, the only answer with the signing key.
func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, account int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h := s.lookup(w, r, account); h != nil {
		writeJSON(w, http.StatusOK, map[string]any{
			"id":        h.id,
			"signature": map[string]string{"key": h.key, "hash_function": "sha256"},
			"data":      h.wire(),
		})
	}
}

// handlePatch serves PATCH /webhooks/{webhook_id}. Like the API, it ignores
// fields it does not know, the event among them.
func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request, account int) {
	var body map[string]json.RawMessage
	if !decodeBody(w, r, &body) {
		return
	}
	f, errs := parseFields(body, false)
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.lookup(w, r, account)
	if h == nil {
		return
	}
	if len(errs) > 0 {
		writeDetail(w, http.StatusUnprocessableEntity, errs...)
		return
	}
	if f.url != nil {
		h.url = *f.url
	}
	if f.rateLimit != nil {
		h.rateLimit = *f.rateLimit
	}
	if f.period != nil {
		h.rateLimitPeriod = *f.period
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": h.id, "data": h.wire(), "object": "Webhook", "patched": true})
}

func (s *Server) handleArchive(w http.ResponseWriter, r *http.Request, account int) {
	s.setArchived(w, r, account, true)
}

func (s *Server) handleUnarchive(w http.ResponseWriter, r *http.Request, account int) {
	s.setArchived(w, r, account, false)
}

func (s *Server) setArchived(w http.ResponseWriter, r *http.Request, account int, archived bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.lookup(w, r, account)
	if h == nil {
		return
	}
	if archived && h.status != webhooks.StatusArchived {
		h.status, h.archivedAt = webhooks.StatusArchived, time.Now().Unix()
	} else if !archived {
		h.status, h.archivedAt = webhooks.StatusActive, 0
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": h.id, "data": h.wire(), "object": "Webhook", "archived": archived})
}

// handleTrigger serves POST /_fake/trigger, the test-only route other languages
// use to make the fake deliver an event.
func (s *Server) handleTrigger(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Event     string          `json:"event"`
		Data      json.RawMessage `json:"data"`
		AccountID int             `json:"account_id"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	event, err := webhooks.ParseEventType(body.Event)
	if err != nil {
		writeDetail(w, http.StatusUnprocessableEntity, invalid([]any{"body", "event"}, err.Error(), "type_error.enum"))
		return
	}
	data := body.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	deliveries, err := s.trigger(r.Context(), body.AccountID, event, data)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, errClosed) {
			status = http.StatusServiceUnavailable
		}
		writeDetail(w, status, detailError{Msg: err.Error(), Type: "fake"})
		return
	}
	if deliveries == nil {
		deliveries = []Delivery{}
	}
	writeJSON(w, http.StatusOK, deliveries)
}
