package webhooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors from verifying a delivery. None of their messages ever holds a MAC or a secret.
var (
	ErrMissingSignature   = errors.New("webhooks: missing signature")
	ErrMalformedSignature = errors.New("webhooks: malformed signature")
	ErrSignatureMismatch  = errors.New("webhooks: signature does not match")
	ErrEmptySecret        = errors.New("webhooks: empty signing secret")
	ErrSecretWhitespace   = errors.New("webhooks: whitespace around a signing secret")
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
	ErrNoCredentials    = errors.New("webhooks: no credentials: set an access token or a username and password")
	ErrInvalidParams    = errors.New("webhooks: invalid parameters")
	ErrResponseTooLarge = errors.New("webhooks: response too large")

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
// challenge; finish the login with Client.CompleteMFA(ctx, e.Challenge, code).
//
// The challenge works as a credential until it is used, so Error, fmt (every
// verb, %#v included), slog and encoding/json leave it out; read the field
// itself where you need it. As with Webhook, fmt still prints it where it cannot
// call methods: from an unexported struct field, such as that of an error
// wrapping this one printed with a verb meant for neither errors nor pointers
// (%t, %e).
type MFARequiredError struct {
	Challenge string
}

// Error says what to do; it leaves out the challenge, which works as a credential.
func (e *MFARequiredError) Error() string {
	return "webhooks: multi-factor authentication required: call CompleteMFA with the challenge and a code"
}

// Format prints the message for every verb, and for %#v the struct with its
// challenge masked.
func (e MFARequiredError) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, `&webhooks.MFARequiredError{Challenge:"`+redactedText+`"}`)
		return
	}
	io.WriteString(f, e.Error())
}

// LogValue prints the message in slog.
func (e MFARequiredError) LogValue() slog.Value { return slog.StringValue(e.Error()) }

// MarshalJSON writes {"Challenge": "[REDACTED]"}.
func (e MFARequiredError) MarshalJSON() ([]byte, error) {
	return []byte(`{"Challenge":"` + redactedText + `"}`), nil
}

// redact masks the given values wherever the server echoed them.
func (e *APIError) redact(values ...string) {
	for _, v := range values {
		if v == "" {
			continue
		}
		e.Body = bytes.ReplaceAll(e.Body, []byte(v), []byte(redactedText))
		for i := range e.Details {
			e.Details[i].Msg = strings.ReplaceAll(e.Details[i].Msg, v, redactedText)
			for j := range e.Details[i].Loc {
				e.Details[i].Loc[j] = strings.ReplaceAll(e.Details[i].Loc[j], v, redactedText)
			}
		}
	}
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
// Absent, malformed or past values give zero; values too large for a Duration
// give the largest one, never a negative or wrapped-around wait.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case secs <= 0:
			return 0
		case secs > int64(math.MaxInt64/time.Second):
			return math.MaxInt64
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// urlParseProblem says why url.Parse refused a URL, as " (reason)", without
// quoting it: the URL, and even the piece that failed to parse, may hold a
// password.
func urlParseProblem(err error) string {
	var escErr url.EscapeError
	var hostErr url.InvalidHostError
	msg := err.Error()
	switch {
	case errors.As(err, &escErr):
		return " (a % not followed by two hexadecimal digits)"
	case errors.As(err, &hostErr):
		return " (a character not allowed in a host name)"
	case strings.Contains(msg, "userinfo"):
		return " (a character not allowed in a user name or password)"
	case strings.Contains(msg, "port"):
		return " (an invalid port)"
	case strings.Contains(msg, "control character"):
		return " (a control character)"
	case strings.Contains(msg, "missing protocol scheme"):
		return " (no scheme, such as https://)"
	}
	return ""
}

// redactedURL shows u with its user name and password, if any, replaced.
func redactedURL(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	shown := *u
	shown.User = url.User("xxxxx")
	return shown.String()
}

// uriProblem says which character of rawURL a URI may not hold (RFC 3986, the
// OpenAPI "uri" format), or returns "". The user info, which url.Parse has
// already checked, is skipped so that no character of a password is quoted.
func uriProblem(rawURL string) string {
	s := withoutUserinfo(rawURL)
	hostEnd := len(s)
	if i := strings.Index(s, "//"); i >= 0 {
		if j := strings.IndexAny(s[i+2:], "/?#"); j >= 0 {
			hostEnd = i + 2 + j
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "holds a % not followed by two hexadecimal digits"
			}
			i += 3
			continue
		case c < utf8.RuneSelf && uriChars[c]:
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if i < hostEnd {
			return fmt.Sprintf("holds %q in its host: write the host in its ASCII (xn--) form", string(r))
		}
		var enc strings.Builder
		for _, b := range []byte(s[i : i+size]) {
			fmt.Fprintf(&enc, "%%%02X", b)
		}
		return fmt.Sprintf("holds %q, which a URL must percent-encode: write %s", string(r), enc.String())
	}
	return ""
}

// withoutUserinfo removes "user:password@" from an absolute URL, splitting
// where url.Parse does.
func withoutUserinfo(rawURL string) string {
	i := strings.Index(rawURL, "//")
	if i < 0 {
		return rawURL
	}
	authority := rawURL[i+2:]
	if end := strings.IndexAny(authority, "/?#"); end >= 0 {
		authority = authority[:end]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return rawURL
	}
	return rawURL[:i+2] + rawURL[i+2+at+1:]
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// uriChars are the ASCII characters RFC 3986 allows in a URI, '%' aside.
var uriChars = func() (set [utf8.RuneSelf]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=" {
		set[c] = true
	}
	return set
}()

// jsonProblem says why a delivery body is not the JSON expected without
// quoting any of it: the body may hold personal data, and encoding/json's
// messages quote a character or a number of it.
func jsonProblem(err error) string {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var idErr idError
	switch {
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("not valid JSON (at byte %d)", syntaxErr.Offset)
	case errors.As(err, &typeErr):
		kind, _, _ := strings.Cut(typeErr.Value, " ") // "number 1.5" quotes the number
		if typeErr.Field == "" {
			return "payload is a JSON " + kind + ", not an object"
		}
		return "field " + typeErr.Field + " is a JSON " + kind + ", not " + typeErr.Type.String()
	case errors.As(err, &idErr):
		return string(idErr)
	}
	return "not the JSON of an event"
}

// idError is an id of the wrong kind; it names the kind, never the value.
type idError string

func (e idError) Error() string { return string(e) }

// jsonKind names the kind of a JSON value, to describe it without quoting it.
func jsonKind(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
