package webhooks

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
)

// jsonForm is one way of encoding a parsed body.
type jsonForm struct {
	keys   keysIn
	layout layout
	esc    escaping
	length int64 // the bytes it takes, from jsonDoc.length
}

// jsonForms are the forms worth trying for doc: escapings that cannot differ
// and key orders that are the received one are left out, and Go's HTML
// escaping is never combined with Python's separators.
func jsonForms(doc *jsonDoc) []jsonForm {
	escapes := []escaping{escapeUTF8}
	if doc.nonASCII {
		escapes = append(escapes, escapeASCII)
	}
	if doc.htmlChars {
		escapes = append(escapes, escapeHTML)
	}
	orders := []keysIn{keysAsReceived}
	if doc.reordered {
		orders = append(orders, keysCakemail)
	}
	if doc.unsorted {
		orders = append(orders, keysSorted)
	}
	var forms []jsonForm
	for _, keys := range orders {
		for _, l := range []layout{layoutCompact, layoutPython, layoutIndent2, layoutIndent4} {
			for _, esc := range escapes {
				if !(esc == escapeHTML && l == layoutPython) {
					forms = append(forms, jsonForm{keys, l, esc, doc.length(l, esc)})
				}
			}
		}
	}
	return forms
}

// planForms returns, in order, the forms of doc that fit in work, hashed with
// keys secrets, and spends their cost; the others count as skipped, twice
// each like the forms tried (with and without a final newline). No form is
// longer than three times the body, which bounds the search's memory.
func planForms(doc *jsonDoc, body []byte, keys int, work *workBudget) []jsonForm {
	limit := max(3*int64(len(body)), 64<<10)
	var plan []jsonForm
	for _, f := range jsonForms(doc) {
		// Hashed by each secret, and written: value by value, string by string.
		cost := f.length*int64(keys+1) + int64(len(doc.toks))*tokenWork + doc.lengths.reencoded[f.esc]*charWork
		if f.length > limit || !work.take(cost) {
			work.skipped += 2
			continue
		}
		plan = append(plan, f)
	}
	return plan
}

// findForm re-encodes doc in each form that fits in work, and until its time
// is up, each with and without a final newline, and returns the index of the secret that signed
// one and the form's description; -1 when none matches. The forms are shared
// among up to maxDiagnoseWorkers goroutines; the first form in order that
// matches wins, whichever goroutine finds it.
func (p *prober) findForm(doc *jsonDoc, body []byte, keys []string, work *workBudget) (int, string) {
	forms := planForms(doc, body, len(keys), work)
	if len(forms) == 0 {
		return -1, ""
	}
	longest := int64(0)
	for _, f := range forms {
		longest = max(longest, f.length)
	}
	var (
		next, tried atomic.Int32
		late        atomic.Int32 // forms left when the time ran out
		mu          sync.Mutex
		best        = len(forms) // the first matching form, or len(forms)
		bestKey     = -1
		bestNewline bool
		wg          sync.WaitGroup
	)
	run := func() {
		defer wg.Done()
		macs := make([]hash.Hash, len(keys))
		for k, s := range keys {
			macs[k] = hmac.New(sha256.New, []byte(s))
		}
		buf := make([]byte, 0, longest) // written to its length, so never grown
		var sum [sha256.Size]byte
		for {
			i := int(next.Add(1) - 1)
			mu.Lock()
			done := i >= best
			mu.Unlock()
			if done {
				return
			}
			if work.expired() {
				late.Add(1)
				continue
			}
			f := forms[i]
			e := encoder{doc: doc, buf: buf[:0], keys: f.keys, layout: f.layout, esc: f.esc}
			e.value(0, 0)
			buf = e.buf
			if bytes.Equal(buf, body) {
				continue // tried already
			}
			tried.Add(2)
			for k, m := range macs {
				m.Reset()
				m.Write(buf)
				m.Sum(sum[:0])
				newline := false
				if !p.cands.match(&sum) {
					m.Write([]byte("\n")) // Sum left the state as it was
					m.Sum(sum[:0])
					if !p.cands.match(&sum) {
						continue
					}
					newline = true
				}
				mu.Lock()
				if i < best {
					best, bestKey, bestNewline = i, k, newline
				}
				mu.Unlock()
				return
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), maxDiagnoseWorkers, len(forms))
	wg.Add(workers)
	for range workers - 1 {
		go run()
	}
	run()
	wg.Wait()
	p.forms += int(tried.Load())
	work.skipped += 2 * int(late.Load())
	if bestKey < 0 {
		return -1, ""
	}
	f := forms[best]
	return bestKey, describeForm(f.keys, f.layout, f.esc, bestNewline)
}

func describeForm(keys keysIn, l layout, esc escaping, newline bool) string {
	parts := []string{[...]string{"compact JSON", `JSON with Python's ", " and ": " separators`, "JSON indented by 2 spaces", "JSON indented by 4 spaces"}[l]}
	switch keys {
	case keysSorted:
		parts = append(parts, "keys sorted")
	case keysCakemail:
		parts = append(parts, "keys in the order Cakemail sends them")
	}
	switch esc {
	case escapeASCII:
		parts = append(parts, `non-ASCII characters as \u escapes`)
	case escapeHTML:
		parts = append(parts, `<, > and & as \u escapes (Go's encoding/json)`)
	default:
		parts = append(parts, "UTF-8 characters unescaped")
	}
	if newline {
		parts = append(parts, "a final newline")
	}
	return strings.Join(parts, ", ")
}
