package webhooks_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/cakemail-go/webhooks"
)

var benchSizes = []int{2 << 10, 64 << 10}

// BenchmarkSignature compares, per payload size, the package function, the
// Verifier, the naive way (a new HMAC, a base64 decode and hmac.Equal per call)
// and the floor: a bare HMAC check whose keyed state and decoded digest are
// prepared outside the loop, so it pays for hashing and comparing only.
func BenchmarkSignature(b *testing.B) {
	for _, size := range benchSizes {
		payload := bytes.Repeat([]byte("x"), size)
		header := webhooks.Sign(payload, secret)
		b.Run(fmt.Sprintf("BareHMAC/%dKiB", size>>10), func(b *testing.B) {
			m := hmac.New(sha256.New, []byte(secret))
			want, err := base64.StdEncoding.DecodeString(header)
			if err != nil {
				b.Fatal(err)
			}
			var sum [sha256.Size]byte
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				m.Reset()
				m.Write(payload)
				if subtle.ConstantTimeCompare(m.Sum(sum[:0]), want) != 1 {
					b.Fatal("bare HMAC rejected a good signature")
				}
			}
		})
		b.Run(fmt.Sprintf("Baseline/%dKiB", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				if !naiveVerify(payload, header, secret) {
					b.Fatal("baseline rejected a good signature")
				}
			}
		})
		b.Run(fmt.Sprintf("Verify/%dKiB", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				if err := webhooks.Verify(payload, header, secret); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("VerifierVerify/%dKiB", size>>10), func(b *testing.B) {
			verifier, err := webhooks.NewVerifier([]string{secret})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				if err := verifier.Verify(payload, header); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func naiveVerify(payload []byte, header, key string) bool {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(payload)
	got, err := base64.StdEncoding.DecodeString(header)
	return err == nil && hmac.Equal(got, m.Sum(nil))
}
