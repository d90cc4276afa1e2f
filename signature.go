package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// The headers Cakemail puts the signature in. The API guide shows X-Signature with
// a base64 digest; other Cakemail documents show X-Cakemail-Signature, in base64 or hex.
const (
	SignatureHeader       = "X-Signature"
	LegacySignatureHeader = "X-Cakemail-Signature"
)

// Sign returns the HMAC-SHA256 of payload keyed with secret, in standard base64:
// the value Cakemail sends in the X-Signature header.
func Sign(payload []byte, secret string) string {
	sum := mac(payload, secret)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// SignHex returns the same digest as Sign in lower-case hex.
func SignHex(payload []byte, secret string) string {
	sum := mac(payload, secret)
	return hex.EncodeToString(sum[:])
}

func mac(payload []byte, secret string) [sha256.Size]byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write(payload)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
