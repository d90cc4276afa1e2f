package webhooks

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// formBodies are JSON bodies with what the forms differ in: key order,
// escapes of every kind, surrogate pairs, lone surrogates, multibyte text,
// <, > and &, U+2028, DEL, deep and empty containers, literals kept as sent.
func formBodies(t testing.TB) [][]byte {
	bodies := [][]byte{
		[]byte(`{"event":"Email.Clicked","account_id":42,"data":{"email":"zoë@example.com","link":"https://x/?a=1&b=<2>","tags":["café","naïve 🎉"],"empty":{},"none":[]}}`),
		[]byte(`{"z":1.50,"a":1e3,"m":[-0.0,12345678901234567890,1e-300],"k":"\u00e9\/\ud83c\udf89\n\"\\\b\f\r\t\u0001"}`),
		[]byte(`{"user":{"email":"a","id":1},"data":{},"event":"x","\u00e8":"\ud800 lone","\u2028":"\u2029<>&","del":"` + "\x7f" + `"}`),
		[]byte(` [ [ [ ] , { } , [ 0 , "a" ] ] , { "b" : { "a" : [ true , false , null ] } } ] `),
		[]byte(`"just a string: é 🎉 中文"`),
		[]byte(`12345`),
		[]byte("{\"invalid\":\"\xff\xfe UTF-8\",\"mixed\":\"\xe2\x80\xa8\\u00e9\xc3\xa9\"}"),
		[]byte(`{"b":{"b":{"b":{"b":{"b":1,"a":2},"a":[[[[]]]]},"a":{}},"a":"é"},"a":0}`),
	}
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		if json.Valid(b) {
			bodies = append(bodies, b)
		}
	}
	return bodies
}

// checkForms writes doc in every form and holds each to the length planned
// for it and to meaning what the body means.
func checkForms(t *testing.T, body []byte) {
	doc := parseJSON(body, newWorkBudget())
	if doc == nil {
		return // too deep
	}
	want := decodeJSON(t, body)
	for _, f := range jsonForms(doc) {
		e := encoder{doc: doc, keys: f.keys, layout: f.layout, esc: f.esc}
		e.value(0, 0)
		if int64(len(e.buf)) != f.length {
			t.Fatalf("form %+v of %q: written %d bytes, planned %d:\n%s", f, body, len(e.buf), f.length, e.buf)
		}
		if !json.Valid(e.buf) {
			t.Fatalf("form %+v of %q is not JSON:\n%s", f, body, e.buf)
		}
		if got := decodeJSON(t, e.buf); !assert.ObjectsAreEqual(want, got) {
			t.Fatalf("form %+v of %q means something else:\n%s", f, body, e.buf)
		}
		if f.esc == escapeASCII {
			for _, c := range e.buf {
				if c >= utf8.RuneSelf {
					t.Fatalf("form %+v of %q holds a byte beyond ASCII:\n%s", f, body, e.buf)
				}
			}
		}
	}
}

func decodeJSON(t *testing.T, b []byte) any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v))
	return v
}

func TestJSONFormsHaveThePlannedLengthAndMeaning(t *testing.T) {
	for _, body := range formBodies(t) {
		checkForms(t, body)
	}
}

func FuzzJSONForms(f *testing.F) {
	for _, body := range formBodies(f) {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if json.Valid(body) {
			checkForms(t, body)
		}
	})
}

func TestParseJSONCountsEveryValue(t *testing.T) {
	for _, body := range formBodies(t) {
		n, ok := countTokens(body)
		require.True(t, ok)
		doc := parseJSON(body, newWorkBudget())
		require.NotNil(t, doc)
		assert.Len(t, doc.toks, n, "%s", body)
		assert.Equal(t, n, cap(doc.toks), "allocated once: %s", body)
	}
	deep := []byte(strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1))
	assert.Nil(t, parseJSON(deep, newWorkBudget()), "deeper than maxJSONDepth")
}

// Past its time, the search tries nothing more and counts what it left.
func TestDiagnoseWorkStopsWhenTheTimeIsUp(t *testing.T) {
	body := formBodies(t)[0]
	doc := parseJSON(body, newWorkBudget())
	require.NotNil(t, doc)

	late := &workBudget{left: diagnoseWork, deadline: time.Now()}
	assert.Nil(t, parseJSON(body, late), "the parse stops")
	p := &prober{}
	require.NoError(t, p.cands.parse(Sign(body, "other")))
	k, _ := p.findForm(doc, body, []string{"key"}, late)
	assert.Equal(t, -1, k)
	assert.Zero(t, p.forms, "no form tried")
	assert.Equal(t, 2*len(jsonForms(doc)), late.skipped, "each form counted as not tried, with and without a newline")
}

// The forms planned fit in the work left, in order, and the rest are counted.
func TestPlanFormsKeepsToTheBudget(t *testing.T) {
	body := formBodies(t)[0]
	doc := parseJSON(body, newWorkBudget())
	forms := jsonForms(doc)
	cost := func(f jsonForm, keys int) int64 {
		return f.length*int64(keys+1) + int64(len(doc.toks))*tokenWork + doc.lengths.reencoded[f.esc]*charWork
	}
	all := newWorkBudget()
	assert.Len(t, planForms(doc, body, 8, all), len(forms))
	assert.Zero(t, all.skipped)

	room := cost(forms[0], 8) + cost(forms[1], 8)
	some := &workBudget{left: room, deadline: time.Now().Add(time.Hour)}
	plan := planForms(doc, body, 8, some)
	require.GreaterOrEqual(t, len(plan), 2)
	assert.Equal(t, forms[:2], plan[:2], "in order")
	var spent int64
	for _, f := range plan {
		spent += cost(f, 8)
	}
	assert.LessOrEqual(t, spent, room)
	assert.Equal(t, room-spent, some.left)
	assert.Equal(t, 2*(len(forms)-len(plan)), some.skipped)
}
