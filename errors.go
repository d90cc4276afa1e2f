package webhooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Errors from verifying a delivery. None of their messages ever holds a MAC or a secret.
var (
	ErrMissingSignature   = errors.New("webhooks: missing signature")
	ErrMalformedSignature = errors.New("webhooks: malformed signature")
	ErrSignatureMismatch  = errors.New("webhooks: signature does not match")
	ErrEmptySecret        = errors.New("webhooks: empty signing secret")
	ErrBodyTooLarge       = errors.New("webhooks: body too large")
	ErrTooOld             = errors.New("webhooks: event timestamp too old")
	ErrTooNew             = errors.New("webhooks: event timestamp too far in the future")
	ErrUnreadableBody     = errors.New("webhooks: request body could not be read")
)

// Errors from reading events.
var (
	ErrUnknownEventType = errors.New("webhooks: unknown event type")
	ErrInvalidEvent     = errors.New("webhooks: invalid event payload")
)

// Errors from the API client. The status sentinels match an *APIError with errors.Is.
var (
	ErrNoCredentials = errors.New("webhooks: no credentials: set an access token or a username and password")
	ErrInvalidParams = errors.New("webhooks: invalid parameters")

	ErrNotFound     = errors.New("webhooks: not found")
	ErrUnauthorized = errors.New("webhooks: unauthorized")
	ErrForbidden    = errors.New("webhooks: forbidden")
	ErrRateLimited  = errors.New("webhooks: rate limited")
	ErrValidation   = errors.New("webhooks: validation failed")
	ErrServer       = errors.New("webhooks: server error")
)

// maxErrorBody caps how much of an error response is kept in APIError.Body.
const maxErrorBody = 16 << 10

// APIError is a non-2xx answer from the Cakemail API.
type APIError struct {
	StatusCode int
	Method     string
	Path       string // without the query string
	Details    []ErrorDetail
	RequestID  string        // the X-Request-Id header, for Cakemail support
	RetryAfter time.Duration // from the Retry-After header; zero when absent
	Body       []byte        // the response body, capped at 16 KiB
}

// ErrorDetail is one entry of the API's "detail" list.
type ErrorDetail struct {
	Loc  []string // where the problem is, such as ["body", "url"]
	Msg  string
	Type string
	Code int
}

// String renders the detail as "body.url: message".
func (d ErrorDetail) String() string {
	if len(d.Loc) == 0 {
		return d.Msg
	}
	return strings.Join(d.Loc, ".") + ": " + d.Msg
}

// Error reads like "webhooks: POST /webhooks: 422 Unprocessable Entity: body.url: invalid URL".
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("webhooks: ")
	if e.Method != "" {
		b.WriteString(e.Method + " " + e.Path + ": ")
	}
	b.WriteString(strconv.Itoa(e.StatusCode))
	if text := http.StatusText(e.StatusCode); text != "" {
		b.WriteString(" " + text)
	}
	for i, d := range e.Details {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(d.String())
	}
	return b.String()
}

// Is lets errors.Is match an APIError against the status sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrValidation:
		return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusUnprocessableEntity
	case ErrServer:
		return e.StatusCode >= 500 && e.StatusCode <= 599
	}
	return false
}

// MFARequiredError is returned when the password grant is answered with an MFA
// challenge; finish the login with Client.CompleteMFA.
type MFARequiredError struct {
	Challenge string
}

// Error says what to do; it leaves out the challenge, which works as a credential.
func (e *MFARequiredError) Error() string {
	return "webhooks: multi-factor authentication required: call CompleteMFA with the challenge and a code"
}

// newAPIError builds the error for a non-2xx response and drains its body (capped).
func newAPIError(method, path string, resp *http.Response, now time.Time) *APIError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{
		StatusCode: resp.StatusCode,
		Method:     method,
		Path:       path,
		RequestID:  resp.Header.Get("X-Request-Id"),
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
		Body:       body,
		Details:    parseErrorDetails(body),
	}
	return e
}

// parseErrorDetails reads {"detail": [...]} or {"detail": "text"}; anything else
// (an HTML page from a proxy, say) gives no details.
func parseErrorDetails(body []byte) []ErrorDetail {
	var envelope struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &envelope) != nil || isNullJSON(envelope.Detail) {
		return nil
	}
	var text string
	if json.Unmarshal(envelope.Detail, &text) == nil {
		return []ErrorDetail{{Msg: text}}
	}
	var items []struct {
		Loc  []any  `json:"loc"`
		Msg  string `json:"msg"`
		Type string `json:"type"`
		Code int    `json:"code"`
	}
	if json.Unmarshal(envelope.Detail, &items) != nil {
		return nil
	}
	details := make([]ErrorDetail, 0, len(items))
	for _, it := range items {
		d := ErrorDetail{Msg: it.Msg, Type: it.Type, Code: it.Code}
		for _, l := range it.Loc {
			d.Loc = append(d.Loc, fmt.Sprint(l))
		}
		details = append(details, d)
	}
	return details
}

// parseRetryAfter reads a Retry-After value in seconds or as an HTTP date.
// Absent, malformed or past values give zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
