package webhooks

import (
	"bytes"
	"encoding/json"
	"slices"
	"unicode/utf8"
)

// This file re-encodes a JSON body the ways common libraries do, keeping its
// key order and number literals as sent, for Diagnose to find the form that
// was signed. encoding/json cannot: it sorts map keys, loses the order of
// structs it does not know, and escapes <, > and &. The body is read once into
// a flat list of tokens that point into it, so that each form costs one pass
// over that list and allocates nothing but its output.

// jsonTok is one value of the body.
type jsonTok struct {
	start, end int32 // a scalar's bytes in the body, a string's with its quotes
	next       int32 // the index of the token after this value and its members
	n          int32 // an object's members or an array's elements
	sorted     int32 // where an object's keys sorted start in jsonDoc.perm; -1 when they already are
	ours       int32 // likewise for the order Cakemail sends them in
	kind       byte  // '{', '[', '"', or '0' for a number, true, false or null
	flags      uint8 // a string's: strEscaped, strNonASCII, strHTML
}

const (
	strEscaped  = 1 << iota // holds a backslash escape
	strNonASCII             // holds a character beyond ASCII, or DEL
	strHTML                 // holds <, >, &, U+2028 or U+2029
)

// jsonDoc is a parsed body and what its re-encodings can differ in.
type jsonDoc struct {
	body      []byte
	toks      []jsonTok
	perm      []int32 // key token indexes of objects written in another order
	unsorted  bool    // some object's keys are out of order
	reordered bool    // the top level or its user is not in Cakemail's order
	nonASCII  bool
	htmlChars bool
	tooDeep   bool
}

// The order Cakemail sends its keys in: the API's payload, then the guide's.
var (
	topLevelKeys = []string{"event", "account_id", "ip", "user", "created_on", "timestamp", "data"}
	userKeys     = []string{"id", "email", "account_id"}
)

// parseJSON reads a body json.Valid accepted, or returns nil when it is
// nested deeper than maxJSONDepth.
func parseJSON(body []byte) *jsonDoc {
	d := &jsonDoc{body: body, toks: make([]jsonTok, 0, len(body)/8+1)}
	d.value(0, 0)
	if d.tooDeep || len(d.toks) == 0 {
		return nil
	}
	if root := &d.toks[0]; root.kind == '{' {
		root.ours = d.order(0, byRank(topLevelKeys))
		for _, k := range d.members(0) {
			if string(d.keyText(k)) == "user" && d.toks[k+1].kind == '{' {
				d.toks[k+1].ours = d.order(k+1, byRank(userKeys))
				d.reordered = d.reordered || d.toks[k+1].ours >= 0
			}
		}
		d.reordered = d.reordered || root.ours >= 0
	}
	return d
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// value appends the tokens of the value at byte i and returns the byte after it.
func (d *jsonDoc) value(i, depth int) int {
	if depth >= maxJSONDepth {
		d.tooDeep = true
		return len(d.body)
	}
	b := d.body
	i = skipSpace(b, i)
	if i >= len(b) {
		return i
	}
	at := int32(len(d.toks))
	d.toks = append(d.toks, jsonTok{start: int32(i), sorted: -1, ours: -1})
	t := jsonTok{start: int32(i), sorted: -1, ours: -1, kind: b[i]}
	switch c := b[i]; c {
	case '{', '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		i = skipSpace(b, i+1)
		for !d.tooDeep && i < len(b) && b[i] != end {
			if c == '{' {
				i = d.value(i, depth+1) // the key
				i = skipSpace(b, i) + 1 // the colon
			}
			i = skipSpace(b, d.value(i, depth+1))
			t.n++
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
			}
		}
		i++
	case '"':
		i = d.scanString(i, &t)
	default:
		t.kind = '0'
	literal:
		for ; i < len(b); i++ {
			switch b[i] {
			case ' ', '\t', '\r', '\n', ',', ']', '}':
				break literal
			}
		}
	}
	t.end = int32(min(i, len(b)))
	t.next = int32(len(d.toks))
	d.toks[at] = t
	if t.kind == '{' {
		t.sorted = d.order(at, func(a, b []byte) int { return bytes.Compare(a, b) })
		d.toks[at].sorted = t.sorted
		d.unsorted = d.unsorted || t.sorted >= 0
	}
	return i
}

// scanString reads the string at byte i into t and returns the byte after it.
func (d *jsonDoc) scanString(i int, t *jsonTok) int {
	b := d.body
	for i++; i < len(b) && b[i] != '"'; i++ {
		switch c := b[i]; {
		case c == '\\':
			t.flags |= strEscaped
			i++
		case c >= 0x7f:
			t.flags |= strNonASCII
			if c == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xA8 || b[i+2] == 0xA9) {
				t.flags |= strHTML // U+2028, U+2029
			}
		case c == '<' || c == '>' || c == '&':
			t.flags |= strHTML
		}
	}
	i++
	if t.flags&strEscaped != 0 {
		// Escapes may stand for anything: look at what they decode to.
		var s string
		json.Unmarshal(b[t.start:min(i, len(b))], &s)
		for _, r := range s {
			switch {
			case r >= 0x7f:
				t.flags |= strNonASCII
				if r == '\u2028' || r == '\u2029' {
					t.flags |= strHTML
				}
			case r == '<' || r == '>' || r == '&':
				t.flags |= strHTML
			}
		}
	}
	d.nonASCII = d.nonASCII || t.flags&strNonASCII != 0
	d.htmlChars = d.htmlChars || t.flags&strHTML != 0
	return i
}

// members returns the key token indexes of the object at index o, in order.
func (d *jsonDoc) members(o int32) []int32 {
	keys := make([]int32, 0, d.toks[o].n)
	for k := o + 1; len(keys) < int(d.toks[o].n); k = d.toks[k+1].next {
		keys = append(keys, k)
	}
	return keys
}

// keyText is the decoded text of the string token k.
func (d *jsonDoc) keyText(k int32) []byte {
	t := &d.toks[k]
	raw := d.body[t.start:t.end]
	if t.flags&strEscaped == 0 {
		return raw[1 : len(raw)-1]
	}
	var s string
	json.Unmarshal(raw, &s)
	return []byte(s)
}

// order puts the keys of object o stably in cmp's order into d.perm and
// returns where they start, or -1 when that is the order they are in.
func (d *jsonDoc) order(o int32, cmp func(a, b []byte) int) int32 {
	if d.toks[o].n < 2 {
		return -1
	}
	keys := d.members(o)
	ordered := slices.Clone(keys)
	slices.SortStableFunc(ordered, func(a, b int32) int { return cmp(d.keyText(a), d.keyText(b)) })
	if slices.Equal(keys, ordered) {
		return -1
	}
	at := int32(len(d.perm))
	d.perm = append(d.perm, ordered...)
	return at
}

// byRank orders the known keys first, in known's order, and the others after.
func byRank(known []string) func(a, b []byte) int {
	rank := func(k []byte) int {
		for i, s := range known {
			if string(k) == s {
				return i
			}
		}
		return len(known)
	}
	return func(a, b []byte) int { return rank(a) - rank(b) }
}

type layout int

const (
	layoutCompact layout = iota // "," and ":"
	layoutPython                // ", " and ": ", Python's json.dumps default
	layoutIndent2               // newlines, 2 spaces per level, ": "
	layoutIndent4
)

type escaping int

const (
	escapeUTF8  escaping = iota // only what JSON requires: JavaScript, Python with ensure_ascii=False
	escapeASCII                 // everything beyond ASCII as \u: Python's default ensure_ascii
	escapeHTML                  // <, >, &, U+2028 and U+2029 as \u: Go's encoding/json
)

// keysIn is the order an encoder writes an object's keys in.
type keysIn int

const (
	keysAsReceived keysIn = iota
	keysCakemail          // the top level's and user's in the order Cakemail sends them
	keysSorted            // Python's sort_keys, Go's maps
)

// encoder writes a jsonDoc in one form. It only reads the jsonDoc, so
// several encoders can share one.
type encoder struct {
	doc    *jsonDoc
	buf    []byte
	keys   keysIn
	layout layout
	esc    escaping
}

// spaces is enough indentation for maxJSONDepth levels of 4.
var spaces = "\n" + string(bytes.Repeat([]byte(" "), 4*maxJSONDepth))

func (e *encoder) value(i int32, depth int) {
	d := e.doc
	t := &d.toks[i]
	switch t.kind {
	case '"':
		e.string(t)
	case '0':
		e.buf = append(e.buf, d.body[t.start:t.end]...)
	case '[':
		if t.n == 0 {
			e.buf = append(e.buf, "[]"...)
			return
		}
		e.buf = append(e.buf, '[')
		for j, v := int32(0), i+1; j < t.n; j, v = j+1, d.toks[v].next {
			e.separate(j, depth+1)
			e.value(v, depth+1)
		}
		e.close(']', depth)
	case '{':
		if t.n == 0 {
			e.buf = append(e.buf, "{}"...)
			return
		}
		perm := int32(-1)
		switch {
		case e.keys == keysSorted:
			perm = t.sorted
		case e.keys == keysCakemail:
			perm = t.ours
		}
		e.buf = append(e.buf, '{')
		k := i + 1
		for j := int32(0); j < t.n; j++ {
			if perm >= 0 {
				k = d.perm[perm+j]
			}
			e.separate(j, depth+1)
			e.string(&d.toks[k])
			if e.layout == layoutCompact {
				e.buf = append(e.buf, ':')
			} else {
				e.buf = append(e.buf, ": "...)
			}
			e.value(k+1, depth+1)
			k = d.toks[k+1].next
		}
		e.close('}', depth)
	}
}

// separate writes what comes before the j-th member at depth.
func (e *encoder) separate(j int32, depth int) {
	switch e.layout {
	case layoutCompact:
		if j > 0 {
			e.buf = append(e.buf, ',')
		}
	case layoutPython:
		if j > 0 {
			e.buf = append(e.buf, ", "...)
		}
	default:
		if j > 0 {
			e.buf = append(e.buf, ',')
		}
		e.newline(depth)
	}
}

func (e *encoder) close(c byte, depth int) {
	if e.layout == layoutIndent2 || e.layout == layoutIndent4 {
		e.newline(depth)
	}
	e.buf = append(e.buf, c)
}

func (e *encoder) newline(depth int) {
	width := 2
	if e.layout == layoutIndent4 {
		width = 4
	}
	e.buf = append(e.buf, spaces[:1+depth*width]...)
}

// string writes the string token t as e.esc says: as sent when that cannot
// differ, else decoded and quoted again.
func (e *encoder) string(t *jsonTok) {
	raw := e.doc.body[t.start:t.end]
	switch {
	case t.flags&strEscaped == 0 && (e.esc == escapeUTF8 ||
		e.esc == escapeASCII && t.flags&strNonASCII == 0 || e.esc == escapeHTML && t.flags&strHTML == 0):
		e.buf = append(e.buf, raw...)
	case t.flags&strEscaped == 0:
		e.str(raw[1 : len(raw)-1])
	default:
		var s string
		json.Unmarshal(raw, &s)
		e.str([]byte(s))
	}
}

const hexDigits = "0123456789abcdef"

// str writes s quoted, escaped as e.esc says; runs that need no escape are
// copied whole.
func (e *encoder) str(s []byte) {
	e.buf = append(e.buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && !(c == 0x7f && e.esc == escapeASCII) &&
				!(e.esc == escapeHTML && (c == '<' || c == '>' || c == '&')) {
				i++
				continue
			}
			e.buf = append(e.buf, s[start:i]...)
			switch c {
			case '"', '\\':
				e.buf = append(e.buf, '\\', c)
			case '\n':
				e.buf = append(e.buf, '\\', 'n')
			case '\r':
				e.buf = append(e.buf, '\\', 'r')
			case '\t':
				e.buf = append(e.buf, '\\', 't')
			case '\b':
				e.buf = append(e.buf, '\\', 'b')
			case '\f':
				e.buf = append(e.buf, '\\', 'f')
			default:
				e.u(rune(c))
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if e.esc == escapeUTF8 || (e.esc == escapeHTML && r != '\u2028' && r != '\u2029') {
			i += size
			continue
		}
		e.buf = append(e.buf, s[start:i]...)
		if r > 0xFFFF { // a surrogate pair, as Python writes it
			r -= 0x10000
			e.u(0xD800 + r>>10)
			e.u(0xDC00 + r&0x3FF)
		} else {
			e.u(r)
		}
		i += size
		start = i
	}
	e.buf = append(e.buf, s[start:]...)
	e.buf = append(e.buf, '"')
}

// u writes r, at most 0xFFFF, as \u and four lower-case hex digits.
func (e *encoder) u(r rune) {
	e.buf = append(e.buf, '\\', 'u', hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
}
