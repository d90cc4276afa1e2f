package webhooks_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/cakemail-go/webhooks"
)

var benchSizes = []int{2 << 10, 64 << 10}

// BenchmarkSignature compares, per payload size, the package function, the
// Verifier, and the naive way: a new HMAC, a base64 decode and hmac.Equal per call.
func BenchmarkSignature(b *testing.B) {
	for _, size := range benchSizes {
		payload := bytes.Repeat([]byte("x"), size)
		header := webhooks.Sign(payload, secret)
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
