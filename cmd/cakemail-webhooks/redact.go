package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// minHiddenLength is the shortest credential masked: masking a one- to
// three-letter value would garble the text it is found in and protect nothing.
const minHiddenLength = 4

// hiddenText replaces a credential found in text the command did not write.
const hiddenText = "[hidden]"

// credentials are the secrets a command knows: the API's password and access
// token, the password of a URL, webhook secrets. The command never writes them
// into its own messages, so they are masked only where someone else's text is
// shown: the API's error answers, which may echo what they were sent, and a
// receiver's answer. The command's own words are never masked.
type credentials struct {
	mu     sync.Mutex
	values []string // every form each value takes on the wire, longest first
}

// add records values, in every form they take inside a URL, a form body or JSON.
func (c *credentials) add(values ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range values {
		if len(v) < minHiddenLength {
			continue
		}
		forms := []string{v, url.QueryEscape(v), url.PathEscape(v), jsonEscaped(v, true), jsonEscaped(v, false)}
		if q := strconv.QuoteToASCII(v); len(q) > 2 {
			forms = append(forms, q[1:len(q)-1]) // Python's json.dumps escapes non-ASCII so
		}
		for _, f := range forms {
			if !containsString(c.values, f) {
				c.values = append(c.values, f)
			}
		}
	}
	// Longest first, so that a value inside another is masked as part of it.
	for i := 1; i < len(c.values); i++ {
		for j := i; j > 0 && len(c.values[j]) > len(c.values[j-1]); j-- {
			c.values[j], c.values[j-1] = c.values[j-1], c.values[j]
		}
	}
}

// addURLPassword records the password of rawURL, if it holds one.
func (c *credentials) addURLPassword(rawURL string) {
	if rawURL == "" {
		return
	}
	if u, err := url.Parse(rawURL); err == nil {
		if pw, ok := u.User.Password(); ok {
			c.add(pw)
		}
		return
	}
	// Unparsable: take whatever stands between the scheme and the last '@'.
	if at := strings.LastIndex(rawURL, "@"); at > 0 {
		userinfo := rawURL[:at]
		if i := strings.Index(userinfo, "://"); i >= 0 {
			userinfo = userinfo[i+3:]
		}
		if _, pw, ok := strings.Cut(userinfo, ":"); ok {
			c.add(pw)
		}
	}
}

// mask replaces every known credential in s, text the command did not write.
func (c *credentials) mask(s string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.values {
		s = strings.ReplaceAll(s, v, hiddenText)
	}
	return s
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// jsonEscaped is v as it stands between the quotes of a JSON string.
func jsonEscaped(v string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	if enc.Encode(v) != nil {
		return v
	}
	out := strings.TrimSuffix(b.String(), "\n")
	return out[1 : len(out)-1]
}

// maxMaskedBody bounds how much of an error answer is read to be masked; the
// SDK keeps far less of it.
const maxMaskedBody = 1 << 20

// echoMaskingTransport masks the known credentials in the body of every API
// answer that is not a success, which is what the SDK turns into the error
// messages the command prints. Successful answers pass untouched: they hold
// what get, secrets and rotate are there to print.
type echoMaskingTransport struct {
	next  http.RoundTripper
	creds *credentials
}

func (t *echoMaskingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.StatusCode < 300 {
		return resp, err
	}
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxMaskedBody))
	resp.Body.Close()
	masked := []byte(t.creds.mask(string(body)))
	resp.Body = io.NopCloser(bytes.NewReader(masked))
	resp.ContentLength = int64(len(masked))
	resp.Header.Del("Content-Length")
	if readErr != nil && len(body) == 0 {
		return nil, readErr
	}
	return resp, nil
}
