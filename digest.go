package webhooks

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"
)

// maxCandidates bounds the work one header can cause.
const maxCandidates = 8

// candidates are the decoded digests of a signature header.
type candidates struct {
	n      int
	digest [maxCandidates][sha256.Size]byte
}

// parse decodes every value of header that is a 32-byte digest.
func (c *candidates) parse(header string) error {
	c.n = 0
	rest := strings.TrimSpace(header)
	if rest == "" {
		return ErrMissingSignature
	}
	// Nearly every header is one bare digest: decode it without splitting.
	if decodeDigest(rest, &c.digest[0]) {
		c.n = 1
		return nil
	}
	for rest != "" && c.n < maxCandidates {
		// A byte loop rather than strings.IndexAny: this runs on every delivery.
		i := 0
		for i < len(rest) && rest[i] != ',' && rest[i] != ' ' && rest[i] != '\t' {
			i++
		}
		value := rest[:i]
		if i < len(rest) {
			rest = rest[i+1:]
		} else {
			rest = ""
		}
		if len(value) > 7 && strings.EqualFold(value[:7], "sha256=") {
			value = value[7:]
		}
		if decodeDigest(value, &c.digest[c.n]) {
			c.n++
		}
	}
	if c.n == 0 {
		return ErrMalformedSignature
	}
	return nil
}

// decodeDigest reads one value, hex or base64 told apart by length: 32 bytes
// are 64 hex digits, or 43 base64 characters (44 with padding).
func decodeDigest(s string, dst *[sha256.Size]byte) bool {
	switch len(s) {
	case 2 * sha256.Size:
		return decodeHex(s, dst)
	case 44:
		if s[43] != '=' {
			return false
		}
		return decodeBase64Digest(s[:43], dst)
	case 43:
		return decodeBase64Digest(s, dst)
	}
	return false
}

// base64Values maps both base64 alphabets, standard and URL-safe, to their
// 6-bit values; 0xFF marks a byte that is in neither.
var base64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(std); i++ {
		t[std[i]] = byte(i)
	}
	t['-'], t['_'] = 62, 63
	return t
}()

// decodeBase64Digest decodes the 43 unpadded characters of a 32-byte digest in
// either alphabet, in place and without allocating.
func decodeBase64Digest(s string, dst *[sha256.Size]byte) bool {
	_ = s[42] // one bounds check for the whole loop
	var bad byte
	for q := 0; q < 10; q++ { // ten full quanta: 40 characters, 30 bytes
		a, b, c, d := base64Values[s[4*q]], base64Values[s[4*q+1]], base64Values[s[4*q+2]], base64Values[s[4*q+3]]
		bad |= a | b | c | d
		dst[3*q] = a<<2 | b>>4
		dst[3*q+1] = b<<4 | c>>2
		dst[3*q+2] = c<<6 | d
	}
	a, b, c := base64Values[s[40]], base64Values[s[41]], base64Values[s[42]]
	bad |= a | b | c
	dst[30] = a<<2 | b>>4
	dst[31] = b<<4 | c>>2
	// Every valid value is below 64, so any 0xFF leaves its top bits set. The
	// last character's two spare bits are ignored, as encoding/base64 does.
	return bad&0xC0 == 0
}

func decodeHex(s string, dst *[sha256.Size]byte) bool {
	for i := range dst {
		hi, ok1 := fromHexChar(s[2*i])
		lo, ok2 := fromHexChar(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHexChar(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// match compares sum with every candidate in constant time.
func (c *candidates) match(sum *[sha256.Size]byte) bool {
	matched := 0
	for i := 0; i < c.n; i++ {
		matched |= subtle.ConstantTimeCompare(sum[:], c.digest[i][:])
	}
	return matched == 1
}
