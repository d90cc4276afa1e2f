package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// completeMFA finishes a login that failed with *MFARequiredError (see
// Client.CompleteMFA). Its errors never hold the challenge or the code.
func (ts *tokenSource) completeMFA(ctx context.Context, challenge, code string) error {
	code = strings.TrimSpace(code)
	if challenge == "" || code == "" {
		return fmt.Errorf("%w: CompleteMFA needs a challenge and a code", ErrInvalidParams)
	}
	if !validMFACode(code) {
		return fmt.Errorf("%w: CompleteMFA: the code must be 6 digits or a 12-character hexadecimal recovery code", ErrInvalidParams)
	}
	if !ts.refreshable() {
		return fmt.Errorf("%w: CompleteMFA needs a client made WithCredentials", ErrInvalidParams)
	}
	body, err := json.Marshal(map[string]string{"challenge": challenge, "code": code})
	if err != nil {
		return err
	}
	tok, err := ts.post(ctx, "/token/challenge", "application/json", body)
	if err != nil {
		// A server may echo the input of a refused call (a validation error's
		// "input", say): neither value may travel on in the error.
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			apiErr.redact(challenge, code)
		}
		return err
	}
	ts.store(tok)
	return nil
}

// validMFACode reports whether code has a shape the API accepts.
func validMFACode(code string) bool {
	digits := func(s string, hex bool) bool {
		for _, r := range s {
			if !('0' <= r && r <= '9') && !(hex && ('a' <= r && r <= 'f' || 'A' <= r && r <= 'F')) {
				return false
			}
		}
		return true
	}
	switch len(code) {
	case 6:
		return digits(code, false)
	case 12:
		return digits(code, true)
	}
	return false
}

// tokenSource holds the login and hands out a valid access token, refreshing it
// at most once at a time however many calls need it. It logs in through the
// transport it is given, and knows nothing of the Client that asks it for tokens.
type tokenSource struct {
	tr       *transport
	logger   *slog.Logger
	username string     // empty for WithAccessToken
	password credential // empty for WithAccessToken

	mu       sync.Mutex
	access   credential
	refresh  credential
	renewAt  time.Time // zero: no known expiry
	inflight *renewal
}

// renewal is a refresh in progress, which other callers wait for.
type renewal struct {
	done chan struct{}
	err  error
	// abandoned: the caller doing the refresh gave up (its context ended), so
	// the error is not the waiters' and they try again themselves.
	abandoned bool
}

// tokenResponse is the answer of POST /token and POST /token/challenge.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Accounts     []int  `json:"accounts"`
	Challenge    string `json:"challenge"`
}

// newTokenSource holds accessToken, or username and password to log in with.
func newTokenSource(tr *transport, logger *slog.Logger, accessToken, username, password string) *tokenSource {
	return &tokenSource{tr: tr, logger: logger, access: newCredential(accessToken), username: username, password: newCredential(password)}
}

func (ts *tokenSource) refreshable() bool { return ts.username != "" }

// token returns an access token that is not about to expire.
func (ts *tokenSource) token(ctx context.Context) (string, error) {
	if !ts.refreshable() {
		return ts.access.reveal(), nil
	}
	for {
		ts.mu.Lock()
		if tok := ts.access.reveal(); tok != "" && (ts.renewAt.IsZero() || time.Now().Before(ts.renewAt)) {
			ts.mu.Unlock()
			return tok, nil
		}
		if r := ts.inflight; r != nil {
			ts.mu.Unlock()
			select {
			case <-r.done:
				if r.err != nil && !r.abandoned {
					return "", r.err
				}
				continue
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		r := &renewal{done: make(chan struct{})}
		ts.inflight = r
		refresh := ts.refresh.reveal()
		ts.mu.Unlock()

		tok, err := ts.login(ctx, refresh)
		ts.mu.Lock()
		if err == nil {
			ts.storeLocked(tok)
		}
		ts.inflight, r.err, r.abandoned = nil, err, ctx.Err() != nil
		close(r.done)
		ts.mu.Unlock()
		if err != nil {
			return "", err
		}
	}
}

// login tries the refresh_token grant when there is a refresh token, then the password grant.
func (ts *tokenSource) login(ctx context.Context, refresh string) (*tokenResponse, error) {
	log := ts.logger
	if refresh != "" {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}
		tok, err := ts.post(ctx, "/token", "application/x-www-form-urlencoded", []byte(form.Encode()))
		if err == nil {
			log.DebugContext(ctx, "cakemail: access token refreshed", "grant_type", "refresh_token")
			return tok, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		log.DebugContext(ctx, "cakemail: refresh failed, logging in again", "err", err)
	}
	form := url.Values{"grant_type": {"password"}, "username": {ts.username}, "password": {ts.password.reveal()}}
	tok, err := ts.post(ctx, "/token", "application/x-www-form-urlencoded", []byte(form.Encode()))
	if err == nil {
		log.DebugContext(ctx, "cakemail: logged in", "grant_type", "password")
	}
	return tok, err
}

// post sends a token request and reads its answer.
func (ts *tokenSource) post(ctx context.Context, path, contentType string, body []byte) (*tokenResponse, error) {
	resp, err := ts.tr.send(ctx, retrySafe, http.MethodPost, ts.tr.baseURL+path, contentType, body, "")
	if err != nil {
		return nil, fmt.Errorf("webhooks: POST %s: %w", path, ts.tr.explainTimeout(ctx, err))
	}
	defer drain(resp)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return nil, fmt.Errorf("webhooks: POST %s: reading the response: %w", path, err)
	}
	var tok tokenResponse
	decodeErr := json.Unmarshal(raw, &tok)
	// The API answers an MFA-protected login with a challenge, on a 401 or a 200.
	if decodeErr == nil && tok.Challenge != "" {
		return nil, &MFARequiredError{Challenge: tok.Challenge}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		return nil, newAPIError(http.MethodPost, path, resp, time.Now())
	}
	if decodeErr != nil || tok.AccessToken == "" {
		return nil, fmt.Errorf("webhooks: POST %s: the answer holds no access token", path)
	}
	return &tok, nil
}

func (ts *tokenSource) store(tok *tokenResponse) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.storeLocked(tok)
}

// storeLocked keeps a new token and plans its renewal a little before it
// expires: a fifth of its life early, at most a minute.
func (ts *tokenSource) storeLocked(tok *tokenResponse) {
	ts.access = newCredential(tok.AccessToken)
	if tok.RefreshToken != "" {
		ts.refresh = newCredential(tok.RefreshToken)
	}
	ts.renewAt = time.Time{}
	if tok.ExpiresIn > 0 {
		life := time.Duration(tok.ExpiresIn) * time.Second
		ts.renewAt = time.Now().Add(life - min(life/5, time.Minute))
	}
}

// invalidate forgets the access token the server refused, unless another call
// has already replaced it.
func (ts *tokenSource) invalidate(refused string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.access.reveal() == refused {
		ts.access = credential{}
	}
}

// credential holds a password or token so that nothing prints it. fmt, slog and
// encoding/json call its methods where they can; where they cannot (a struct
// walked through unexported fields, such as a Client's), fmt prints pointers
// inside structs as addresses and never dereferences a *string, so the value
// behind p stays out of sight.
type credential struct{ p *string }

func newCredential(s string) credential {
	if s == "" {
		return credential{}
	}
	return credential{p: &s}
}

func (c credential) reveal() string {
	if c.p == nil {
		return ""
	}
	return *c.p
}

const redactedText = "[REDACTED]"

// Format prints [REDACTED] for every verb.
func (c credential) Format(f fmt.State, verb rune) { io.WriteString(f, redactedText) }

// LogValue prints [REDACTED] in slog.
func (c credential) LogValue() slog.Value { return slog.StringValue(redactedText) }

// MarshalJSON writes "[REDACTED]".
func (c credential) MarshalJSON() ([]byte, error) { return []byte(`"` + redactedText + `"`), nil }
