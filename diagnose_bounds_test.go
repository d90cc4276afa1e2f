package webhooks_test

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cakemail-go/webhooks"
)

// hostileBody is size bytes of valid JSON shaped to make a re-encoding search
// costly: an array that repeats item until the body is full, inside an object
// whose keys, text and characters leave none of the 33 JSON forms out.
func hostileBody(size int, item string) []byte {
	const head, tail = `{"z":"é<&","data":[`, `],"event":"Email.Opened"}`
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(head)
	for b.Len()+len(item)+1+len(tail) <= size {
		if b.Len() > len(head) {
			b.WriteByte(',')
		}
		b.WriteString(item)
	}
	b.WriteString(tail)
	for b.Len() < size { // pad to size exactly, as insignificant space
		b.WriteByte(' ')
	}
	return b.Bytes()
}

// hostileBodies are deliveries anyone can send to a receiver that diagnoses
// its refusals: deep nesting, many tiny values, escapes and multibyte text.
func hostileBodies(size int) []struct {
	name string
	body []byte
} {
	nest := func(open, close string, depth int, leaf string) string {
		return strings.Repeat(open, depth) + leaf + strings.Repeat(close, depth)
	}
	return []struct {
		name string
		body []byte
	}{
		{"NestedArrays", hostileBody(size, nest("[", "]", 59, "0"))},
		{"NestedObjects", hostileBody(size, nest(`{"b":1,"a":`, "}", 59, "0"))},
		{"TinyNumbers", hostileBody(size, "0")},
		{"SmallFloats", hostileBody(size, "1e-300")},
		{"Escapes", hostileBody(size, `{"\u00e9\/":"\u00e9\/\ud83c\udf89\n\"","\u00e8":"x"}`)},
		{"EscapedStrings", hostileBody(size, `"\u00e9\/\ud83c\udf89"`)},
		{"Multibyte", hostileBody(size, `{"zoë":"café 🎉 中文","ab":"<&>"}`)},
		{"MultibyteLong", hostileBody(size, `"`+strings.Repeat("é🎉中", 4096)+`"`)},
	}
}

// eightSecrets are the most secrets Diagnose tries every form with.
func eightSecrets() []string {
	keys := make([]string, 8)
	for i := range keys {
		keys[i] = fmt.Sprintf("whsec_receiver_secret_%d", i)
	}
	return keys
}

// TestDiagnoseAllocatesBoundedMemoryOnHostileBodies holds Diagnose to 64 MiB
// allocated for 1 MiB bodies shaped to make its search blow up, with 8
// secrets and none right. Time is measured by BenchmarkDiagnose.
func TestDiagnoseAllocatesBoundedMemoryOnHostileBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("diagnoses several 1 MiB bodies")
	}
	const limit = 64 << 20
	keys := eightSecrets()
	for _, c := range hostileBodies(1 << 20) {
		t.Run(c.name, func(t *testing.T) {
			header := signedHeader(c.body, "whsec_the_other_webhooks_secret")
			var d *webhooks.Diagnosis
			allocated := totalAlloc(func() { d = webhooks.Diagnose(c.body, header, keys) })
			require.NotNil(t, d)
			assert.Equal(t, webhooks.CauseWrongSecret, d.Cause, d.String())
			assert.LessOrEqual(t, allocated, uint64(limit), "bytes allocated for a %d-byte body", len(c.body))
			t.Logf("%s: %d bytes allocated", c.name, allocated)
		})
	}
}

// totalAlloc is how many bytes fn allocates, on every goroutine.
func totalAlloc(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// FuzzDiagnose holds Diagnose to the verifier's answer, on deliveries broken
// in each way and on the hostile bodies of hostileBodies: every shape at
// 64 KiB, and two at 1 MiB with 8 secrets, past the work budget (mode's bit 4
// gives 8 secrets instead of one). Fuzzing mostly mutates the small seeds.
func FuzzDiagnose(f *testing.F) {
	f.Add([]byte(sentBody), secret, "", 0)
	f.Add([]byte(pythonIndent2), secret, webhooks.Sign([]byte(sentBody), secret), 1)
	f.Add([]byte(`{"a":[1,{"b":"\u00e9<"}]}`), "k", "", 2)
	f.Add([]byte(`[`), " k\n", "sha256=00", 3)
	for i, c := range hostileBodies(64 << 10) {
		f.Add(c.body, secret, webhooks.Sign(c.body, "whsec_the_other_webhooks_secret"), 1+4*(i%2))
	}
	for _, c := range hostileBodies(1 << 20) {
		if c.name == "NestedArrays" || c.name == "Escapes" {
			f.Add(c.body, secret, webhooks.Sign(c.body, "whsec_the_other_webhooks_secret"), 5)
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte, key, header string, mode int) {
		keys := []string{key}
		if mode&4 != 0 {
			for i := 1; i < 8; i++ {
				keys = append(keys, fmt.Sprintf("%s-%d", key, i))
			}
		}
		h := http.Header{}
		switch mode % 4 {
		case 0: // signed, then a newline added
			h.Set(webhooks.SignatureHeader, webhooks.Sign(payload, key))
			payload = append(bytes.Clone(payload), '\n')
		case 1, 2:
			h.Set(webhooks.SignatureHeader, header)
		case 3:
			h.Set(webhooks.LegacySignatureHeader, header)
		}
		d := webhooks.Diagnose(payload, h, keys)
		// A Verifier takes no secret with whitespace around it, and Diagnose
		// skips empty ones: it finds nothing when one of the others verifies.
		verifies, refused := false, false
		for _, k := range keys {
			if k != strings.TrimSpace(k) {
				refused = true
			}
			if k != "" && webhooks.Verify(payload, webhooks.SignatureFromHeader(h), k) == nil {
				verifies = true
			}
		}
		if verifies && !refused && d != nil {
			t.Fatalf("a delivery that verifies was diagnosed: %s", d)
		}
		if (!verifies || refused) && d == nil {
			t.Fatalf("a delivery that fails (verifies %v, secret refused %v) was not diagnosed", verifies, refused)
		}
		if d != nil && (!strings.HasSuffix(d.String(), ".") || !strings.HasSuffix(d.Finding(), ".")) {
			t.Fatalf("not a sentence: %q", d)
		}
	})
}

// diagnoseBody is about size bytes of a delivery that leaves no re-encoding
// out: keys out of order, characters beyond ASCII, and <, > and &.
func diagnoseBody(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"event":"Email.Clicked","account_id":42,"created_on":1700000000,"data":{"links":[`)
	for i := 0; b.Len() < size-64; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"url":"https://example.com/p?id=%d&ref=<news>","email":"zoë%d@example.com","clicked_on":%d,"title":"Café %d"}`, i, i, 1700000000+i, i)
	}
	b.WriteString(`]}}`)
	return b.Bytes()
}

// BenchmarkDiagnose measures the worst case: a wrong secret, so that every
// form is tried; then 1 MiB bodies shaped to make the search costly, with 8
// secrets (see hostileBodies), which the work budget must keep under 500 ms
// and 64 MiB.
func BenchmarkDiagnose(b *testing.B) {
	for _, size := range []int{2 << 10, 1 << 20} {
		payload := diagnoseBody(size)
		header := signedHeader(payload, "whsec_the_other_webhooks_secret")
		name := fmt.Sprintf("%dKiB", size>>10)
		if size >= 1<<20 {
			name = fmt.Sprintf("%dMiB", size>>20)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for i := 0; i < b.N; i++ {
				if d := webhooks.Diagnose(payload, header, []string{secret}); d == nil || d.Cause != webhooks.CauseWrongSecret {
					b.Fatal("want a wrong secret")
				}
			}
		})
	}
	keys := eightSecrets()
	for _, c := range hostileBodies(1 << 20) {
		header := signedHeader(c.body, "whsec_the_other_webhooks_secret")
		b.Run("Hostile/"+c.name+"/1MiB/8secrets", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for i := 0; i < b.N; i++ {
				if d := webhooks.Diagnose(c.body, header, keys); d == nil || d.Cause != webhooks.CauseWrongSecret {
					b.Fatalf("want a wrong secret, got %v", d)
				}
			}
		})
	}
}
