package webhooks

import (
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"
)

// This file re-encodes a JSON body the ways common libraries do, keeping its
// key order and number literals as sent, for Diagnose to find the form a
// receiver hashed. encoding/json cannot: it sorts map keys, loses the order of
// structs it does not know, and escapes <, > and &.

// jsonNode is one value: an object, an array, a string, or a literal (number,
// true, false, null) kept as sent.
type jsonNode struct {
	kind   byte     // '{', '[', '"' or '0' for a literal
	str    *jsonStr // a string's
	lit    []byte   // a literal's, as sent
	keys   []*jsonStr
	values []*jsonNode
	sorted []int // the keys' indexes in sorted order; nil when already sorted
	ours   []int // the keys' indexes in Cakemail's order; nil when already so
}

// jsonStr is a string or a key: as sent, decoded, and quoted in each escaping
// that writes it otherwise than as sent.
type jsonStr struct {
	raw    []byte // with its quotes, as sent
	text   string
	plain  [3]bool // whether each escaping writes it as sent
	quoted [3][]byte
}

// jsonDoc is a parsed body and what its re-encodings can differ in.
type jsonDoc struct {
	root      *jsonNode
	unsorted  bool // some object's keys are out of order
	reordered bool // the top level or its user is not in Cakemail's order
	nonASCII  bool // some string holds a character beyond ASCII
	htmlChars bool // some string holds <, >, &, U+2028 or U+2029
}

// parseJSON reads body as one JSON value, or returns nil when it is not one
// or is nested deeper than maxJSONDepth. It scans the bytes itself:
// encoding/json's Decoder.Token allocates for every token and takes several
// times as long.
func parseJSON(body []byte) *jsonDoc {
	if !json.Valid(body) {
		return nil
	}
	p := jsonParser{in: body, doc: &jsonDoc{}}
	root := p.value(0)
	if root == nil || p.failed {
		return nil
	}
	p.doc.root = root
	doc := p.doc
	doc.root.ours = cakemailOrder(doc.root, topLevelKeys)
	if doc.root.kind == '{' {
		for i, k := range doc.root.keys {
			if k.text == "user" {
				user := doc.root.values[i]
				user.ours = cakemailOrder(user, userKeys)
				doc.reordered = doc.reordered || user.ours != nil
			}
		}
	}
	doc.reordered = doc.reordered || doc.root.ours != nil
	return doc
}

// The order Cakemail sends its keys in: the API's payload, then the guide's.
var (
	topLevelKeys = []string{"event", "account_id", "ip", "user", "created_on", "timestamp", "data"}
	userKeys     = []string{"id", "email", "account_id"}
)

// cakemailOrder returns n's keys' indexes with those of known put first in
// known's order and the others after them as they came, or nil when that is
// the order they came in.
func cakemailOrder(n *jsonNode, known []string) []int {
	if n.kind != '{' {
		return nil
	}
	rank := func(k *jsonStr) int {
		if i := slices.Index(known, k.text); i >= 0 {
			return i
		}
		return len(known)
	}
	return keyOrder(len(n.keys), func(a, b int) int { return rank(n.keys[a]) - rank(n.keys[b]) })
}

// keyOrder returns the indexes 0 to n-1 stably sorted by cmp, or nil when
// they are in that order already.
func keyOrder(n int, cmp func(a, b int) int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, cmp)
	for i, k := range order {
		if i != k {
			return order
		}
	}
	return nil
}

// jsonParser reads a body json.Valid accepted.
type jsonParser struct {
	in     []byte
	i      int
	doc    *jsonDoc
	failed bool // too deep
	nodes  []jsonNode
	strs   []jsonStr
}

func (p *jsonParser) node() *jsonNode {
	if len(p.nodes) == 0 {
		p.nodes = make([]jsonNode, 256)
	}
	n := &p.nodes[0]
	p.nodes = p.nodes[1:]
	return n
}

func (p *jsonParser) space() {
	for p.i < len(p.in) {
		switch p.in[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) *jsonNode {
	if depth >= maxJSONDepth {
		p.failed = true
		return nil
	}
	p.space()
	if p.i >= len(p.in) {
		p.failed = true
		return nil
	}
	n := p.node()
	switch c := p.in[p.i]; c {
	case '{', '[':
		n.kind = c
		p.i++
		p.space()
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		for !p.failed && p.i < len(p.in) && p.in[p.i] != end {
			if c == '{' {
				n.keys = append(n.keys, p.string())
				p.space()
				p.i++ // the colon
			}
			n.values = append(n.values, p.value(depth+1))
			p.space()
			if p.i < len(p.in) && p.in[p.i] == ',' {
				p.i++
				p.space()
			}
		}
		p.i++
		if c == '{' && !slices.IsSortedFunc(n.keys, compareKeys) {
			p.doc.unsorted = true
			n.sorted = keyOrder(len(n.keys), func(a, b int) int { return compareKeys(n.keys[a], n.keys[b]) })
		}
	case '"':
		n.kind = '"'
		n.str = p.string()
	default:
		n.kind = '0'
		start := p.i
	literal:
		for ; p.i < len(p.in); p.i++ {
			switch p.in[p.i] {
			case ' ', '\t', '\r', '\n', ',', ']', '}':
				break literal
			}
		}
		n.lit = p.in[start:p.i]
	}
	return n
}

func compareKeys(a, b *jsonStr) int { return strings.Compare(a.text, b.text) }

// string reads the string at p.i.
func (p *jsonParser) string() *jsonStr {
	if len(p.strs) == 0 {
		p.strs = make([]jsonStr, 256)
	}
	s := &p.strs[0]
	p.strs = p.strs[1:]
	start := p.i
	p.i++
	escaped, ascii, html := false, true, false
	for p.i < len(p.in) && p.in[p.i] != '"' {
		switch c := p.in[p.i]; {
		case c == '\\':
			escaped = true
			p.i++
		case c >= 0x7f:
			ascii = false
		case c == '<' || c == '>' || c == '&':
			html = true
		}
		p.i++
	}
	p.i++
	s.raw = p.in[start:min(p.i, len(p.in))]
	if escaped {
		json.Unmarshal(s.raw, &s.text) // valid: json.Valid said so
	} else {
		s.text = string(s.raw[1 : len(s.raw)-1])
	}
	if escaped || !ascii {
		// Escapes may stand for anything: look at what they decode to.
		for _, r := range s.text {
			switch {
			case r >= 0x7f && r != utf8.RuneError:
				ascii = false
				html = html || r == '\u2028' || r == '\u2029'
			case r == '<' || r == '>' || r == '&':
				html = true
			}
		}
	}
	p.doc.nonASCII = p.doc.nonASCII || !ascii
	p.doc.htmlChars = p.doc.htmlChars || html
	s.plain = [3]bool{escapeUTF8: !escaped, escapeASCII: !escaped && ascii, escapeHTML: !escaped && !html}
	// Quoted now, so that the goroutines that encode the forms only read.
	for esc, plain := range s.plain {
		if !plain {
			e := encoder{esc: escaping(esc)}
			e.str(s.text)
			s.quoted[esc] = e.buf
		}
	}
	return s
}

// quote returns s written in esc.
func (s *jsonStr) quote(esc escaping) []byte {
	if s.plain[esc] {
		return s.raw
	}
	return s.quoted[esc]
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
	keysSorted            // Python's sort_keys, Go's maps
	keysCakemail          // the top level's and user's in the order Cakemail sends them
)

// encoder writes a jsonNode in one form.
type encoder struct {
	buf    []byte
	keys   keysIn
	layout layout
	esc    escaping
}

func (e *encoder) value(n *jsonNode, depth int) {
	switch n.kind {
	case '"':
		e.buf = append(e.buf, n.str.quote(e.esc)...)
	case '0':
		e.buf = append(e.buf, n.lit...)
	case '[':
		if len(n.values) == 0 {
			e.buf = append(e.buf, "[]"...)
			return
		}
		e.buf = append(e.buf, '[')
		for i, v := range n.values {
			e.separate(i, depth+1)
			e.value(v, depth+1)
		}
		e.close(']', depth)
	case '{':
		if len(n.keys) == 0 {
			e.buf = append(e.buf, "{}"...)
			return
		}
		e.buf = append(e.buf, '{')
		for i := range n.keys {
			k := i
			if e.keys == keysSorted && n.sorted != nil {
				k = n.sorted[i]
			} else if e.keys == keysCakemail && n.ours != nil {
				k = n.ours[i]
			}
			e.separate(i, depth+1)
			e.buf = append(e.buf, n.keys[k].quote(e.esc)...)
			if e.layout == layoutCompact {
				e.buf = append(e.buf, ':')
			} else {
				e.buf = append(e.buf, ": "...)
			}
			e.value(n.values[k], depth+1)
		}
		e.close('}', depth)
	}
}

// separate writes what comes before the i-th member at depth.
func (e *encoder) separate(i, depth int) {
	switch e.layout {
	case layoutCompact:
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
	case layoutPython:
		if i > 0 {
			e.buf = append(e.buf, ", "...)
		}
	default:
		if i > 0 {
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
	e.buf = append(e.buf, '\n')
	for range depth * width {
		e.buf = append(e.buf, ' ')
	}
}

const hexDigits = "0123456789abcdef"

// str writes s quoted, escaped as e.esc says; runs that need no escape are
// copied whole.
func (e *encoder) str(s string) {
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
		r, size := utf8.DecodeRuneInString(s[i:])
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
