package webhooks

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file holds what Diagnose says: the sentences of its causes, and the
// descriptions of headers, secrets and bodies they are built from, none of
// which quotes a secret, a signature or the body.

// missingSignature names the headers present that look like a signature.
func missingSignature(header http.Header) *Diagnosis {
	similar := similarHeaders(header)
	there := ", nor any other header that looks like a signature"
	if len(similar) > 0 {
		there = ", only " + joinAnd(similar)
	}
	return &Diagnosis{Cause: CauseMissingSignature, Secret: -1,
		finding: fmt.Sprintf("The delivery has no %s or %s header%s", SignatureHeader, LegacySignatureHeader, there),
		advice:  "check that it comes from Cakemail and that no proxy drops or renames the header"}
}

// similarHeaders are the names of the headers that look like a signature,
// sorted, each marked when it is empty.
func similarHeaders(header http.Header) []string {
	var similar []string
	for name := range header {
		lower := strings.ToLower(name)
		if !(strings.Contains(lower, "signature") || strings.Contains(lower, "hmac") ||
			strings.Contains(lower, "digest") || strings.HasSuffix(lower, "sig")) {
			continue
		}
		name = http.CanonicalHeaderKey(name)
		if strings.TrimSpace(header.Get(name)) == "" {
			name += " (empty)"
		}
		similar = append(similar, name)
	}
	slices.Sort(similar)
	return slices.Compact(similar)
}

// joinAnd joins words as a sentence lists them: "a", "a and b", "a, b and c".
func joinAnd(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

// count is n things, the noun in the plural unless n is 1.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// noMatch says that none of given secrets matches the signature, neither on
// the body as received nor, for the first tried of them, on any of forms
// altered forms of it.
func noMatch(given, tried, forms int) string {
	altered := fmt.Sprintf("any of %s of it", count(forms, "altered form"))
	if forms == 1 {
		altered = "an altered form of it"
	}
	switch {
	case forms == 0 && given == 1:
		return "The secret given does not match the signature on the body as received"
	case forms == 0:
		return fmt.Sprintf("None of the %d secrets given matches the signature on the body as received", given)
	case given == 1:
		return "The secret given does not match the signature, on the body as received or on " + altered
	case given == tried:
		return fmt.Sprintf("None of the %d secrets given matches the signature, on the body as received or on %s", given, altered)
	}
	return fmt.Sprintf("None of the %d secrets given matches the signature on the body as received, nor do the first %d on %s", given, tried, altered)
}

// describeMalformed says what a header that holds no digest looks like,
// without quoting any of its value but a short scheme prefix.
func describeMalformed(header string) string {
	v := strings.TrimSpace(header)
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = strings.TrimSpace(v[:i]) // of several values, the first says enough
	}
	if prefix, rest, ok := strings.Cut(v, "="); ok && rest != "" && isSchemeName(prefix) && !strings.EqualFold(prefix, "sha256") {
		return fmt.Sprintf("its value starts with the prefix %q, where only \"sha256=\" is understood", prefix+"=")
	}
	if len(v) > 7 && strings.EqualFold(v[:7], "sha256=") {
		v = v[7:]
	}
	if v == "" {
		return "it holds no digest after its prefix"
	}
	hexDigits := strings.Trim(v, "0123456789abcdefABCDEF") == ""
	if hexDigits && len(v) != 44 && len(v) != 43 {
		switch {
		case len(v) == 40:
			return "it is 40 hex digits, a SHA-1 digest, where Cakemail signs with SHA-256 (64 hex digits)"
		case len(v) == 128:
			return "it is 128 hex digits, a SHA-512 digest, where Cakemail signs with SHA-256 (64 hex digits)"
		case len(v) < 64:
			return fmt.Sprintf("it is %d hex digits, not 64, so it looks truncated", len(v))
		}
		return fmt.Sprintf("it is %d hex digits, not 64: the wrong length", len(v))
	}
	raw := strings.TrimRight(v, "=")
	if strings.Trim(raw, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_") == "" {
		n := len(raw) * 6 / 8
		if n < sha256.Size {
			return fmt.Sprintf("it is %d base64 characters, %d bytes instead of 32, so it looks truncated", len(v), n)
		}
		if n > sha256.Size {
			return fmt.Sprintf("it is %d base64 characters, %d bytes instead of 32: the wrong length", len(v), n)
		}
		return "it is 32 bytes of base64 with misplaced padding"
	}
	return fmt.Sprintf("it is %d characters, some neither hex nor base64", len(v))
}

func isSchemeName(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// secretJunk is what loading a secret from a file or a store often adds around it.
const secretJunk = " \t\r\n\"'`"

// trimmedSecrets are s without surrounding whitespace, and without surrounding
// whitespace and quotes, when those differ from s.
func trimmedSecrets(s string) []string {
	var out []string
	for _, t := range []string{strings.TrimSpace(s), strings.Trim(s, secretJunk)} {
		if t != "" && t != s && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// hasSpaceAround says whether s starts or ends with whitespace, which no
// Cakemail secret does: NewVerifier refuses such a secret.
func hasSpaceAround(s string) bool {
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && (unicode.IsSpace(first) || unicode.IsSpace(last))
}

// describeAround names what surrounds t in s, such as "a newline after it"
// or "quotes around it and a newline after it".
func describeAround(s, t string) string {
	at := strings.Index(s, t)
	if at < 0 || t == "" {
		at, t = len(s), ""
	}
	before, after := kindsIn(s[:at]), kindsIn(s[at+len(t):])
	var around, onlyBefore, onlyAfter []string
	for _, k := range junkKinds {
		b, a := before[k.name], after[k.name]
		switch {
		case b > 0 && a > 0:
			around = append(around, k.plural)
		case b > 0:
			onlyBefore = append(onlyBefore, k.named(b))
		case a > 0:
			onlyAfter = append(onlyAfter, k.named(a))
		}
	}
	var parts []string
	for _, group := range []struct {
		kinds []string
		where string
	}{{around, "around it"}, {onlyBefore, "before it"}, {onlyAfter, "after it"}} {
		if len(group.kinds) > 0 {
			parts = append(parts, joinAnd(group.kinds)+" "+group.where)
		}
	}
	return joinAnd(parts)
}

// junkKind is one kind of character found around a secret.
type junkKind struct{ name, singular, plural string }

func (k junkKind) named(n int) string {
	if n == 1 {
		return k.singular
	}
	return k.plural
}

var junkKinds = []junkKind{
	{"quote", "a quote", "quotes"},
	{"space", "a space", "spaces"},
	{"tab", "a tab", "tabs"},
	{"newline", "a newline", "newlines"},
	{"return", "a carriage return", "carriage returns"},
	{"other", "a space character", "space characters"},
}

// kindsIn counts the characters of s by junkKind name; \r\n is one newline.
func kindsIn(s string) map[string]int {
	n := map[string]int{}
	for i, r := range s {
		switch {
		case r == '"' || r == '\'' || r == '`':
			n["quote"]++
		case r == ' ':
			n["space"]++
		case r == '\t':
			n["tab"]++
		case r == '\n':
			n["newline"]++
		case r == '\r' && strings.HasPrefix(s[i+1:], "\n"):
			// counted with its \n
		case r == '\r':
			n["return"]++
		default:
			n["other"]++
		}
	}
	return n
}

type newlineVariant struct {
	what  string
	parts [][]byte
}

// newlineVariants are body with a trailing newline added or removed.
func newlineVariants(body []byte) []newlineVariant {
	vs := []newlineVariant{
		{"a trailing newline (\\n) is added", [][]byte{body, []byte("\n")}},
		{"a trailing \\r\\n is added", [][]byte{body, []byte("\r\n")}},
	}
	if bytes.HasSuffix(body, []byte("\n")) {
		vs = append(vs, newlineVariant{"its trailing newline is removed", [][]byte{body[:len(body)-1]}})
	}
	if trimmed := bytes.TrimRight(body, "\r\n"); len(trimmed) < len(body)-1 {
		vs = append(vs, newlineVariant{"its trailing newlines are removed", [][]byte{trimmed}})
	}
	return vs
}

// looksLikeJWT says whether s is three base64url parts whose first decodes to
// a JSON header with "alg": an access token, not a webhook secret.
func looksLikeJWT(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[1] == "" || len(parts[0]) > 1<<10 {
		return false
	}
	head, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	if err != nil {
		return false
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(head, &fields) != nil {
		return false
	}
	_, ok := fields["alg"]
	return ok
}

// truncation says how body looks cut short, or returns nil.
func truncation(body []byte, header http.Header, valid bool) *Diagnosis {
	cut := func(finding, advice string) *Diagnosis {
		return &Diagnosis{Cause: CauseBodyTruncated, Secret: -1, finding: finding, advice: advice}
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(header.Get("Content-Length")), 10, 64); err == nil && n > int64(len(body)) {
		return cut(fmt.Sprintf("The body is %d bytes but its Content-Length says %d: it was cut short", len(body), n),
			"read the whole request body before verifying")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return cut("The body is empty: something read it before verifying",
			"verify the raw request body before any other middleware or framework reads it")
	}
	if valid {
		return nil
	}
	var raw json.RawMessage
	err := json.NewDecoder(bytes.NewReader(body)).Decode(&raw)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return cut("The body ends before its JSON is complete: it was cut short",
			"read the whole request body (mind any size limit) before verifying")
	}
	if err != nil {
		return cut("The body is not valid JSON, which Cakemail always sends: it was changed on the way",
			"verify the raw request body before anything reads or rewrites it")
	}
	return nil
}
