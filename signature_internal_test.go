package webhooks

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzDecodeDigest holds the hand-written base64 decoder to encoding/base64's
// answer for every 43- and 44-character value. Headers may use either alphabet,
// so the URL-safe characters are folded into the standard ones first.
func FuzzDecodeDigest(f *testing.F) {
	f.Add("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
	f.Add("47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU")
	f.Add("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV")
	f.Add("!7DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) != 43 && len(s) != 44 {
			return
		}
		var got [sha256.Size]byte
		ok := decodeDigest(s, &got)
		folded := strings.NewReplacer("-", "+", "_", "/").Replace(s)
		enc := base64.StdEncoding
		if len(s) == 43 {
			enc = base64.RawStdEncoding
		}
		want, err := enc.DecodeString(folded)
		stdOK := err == nil && len(want) == sha256.Size
		if ok != stdOK {
			t.Fatalf("decodeDigest(%q) ok=%v, encoding/base64 ok=%v (%v)", s, ok, stdOK, err)
		}
		if ok && string(got[:]) != string(want) {
			t.Fatalf("decodeDigest(%q) = %x, encoding/base64 = %x", s, got, want)
		}
	})
}
