package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// stricter reports whether err is one of the ways the notification decoder
// is deliberately stricter than encoding/json.
func stricter(err error) bool {
	for _, s := range []string{"duplicate key", "only in case", "nested deeper", `no "labels"`} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

// sameAsEncodingJSON checks the decoder against encoding/json, the oracle:
// what one accepts the other accepts with the same result, except for the
// input the decoder rejects on purpose.
func sameAsEncodingJSON(t *testing.T, body []byte) {
	t.Helper()
	var got, want Message
	err := decodeMessage(body, &got, 1<<30)
	stdErr := json.Unmarshal(body, &want)
	switch {
	case err == nil && stdErr != nil:
		t.Fatalf("decoder accepts what encoding/json rejects (%v): %q", stdErr, body)
	case err != nil && stdErr == nil:
		if !stricter(err) && strings.TrimSpace(string(body)) != "null" {
			t.Fatalf("decoder rejects (%v) what encoding/json accepts: %q", err, body)
		}
	case err == nil && !reflect.DeepEqual(got, want):
		t.Fatalf("decoded %q\n got %+v\nwant %+v", body, got, want)
	}
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Fatalf("error is not one line: %q", err)
	}
}

func payloadFiles(tb testing.TB) []string {
	files, err := filepath.Glob("../examples/payloads/*.json")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no payloads: %v", err)
	}
	return files
}

func TestDecodeLikeEncodingJSON(t *testing.T) {
	for _, f := range payloadFiles(t) {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(f), func(t *testing.T) { sameAsEncodingJSON(t, body) })
	}
	for _, body := range []string{
		`{"status":"firing","alerts":[{"labels":{"a":"b"}}]}`,
		` {"status" : "firing" , "alerts" : [ { } ] } `,
		`{"status":null,"alerts":null,"groupLabels":null,"truncatedAlerts":null}`,
		`{"alerts":[{"labels":{"a":null},"annotations":{}}]}`,
		`{"receiver":"a\"b\\c\/d\b\f\n\r\t\u00e9\u20ac\ud83d\ude00"}`,
		`{"receiver":"lone \ud800 high, lone \udc00 low, \ud800\u0041 broken pair"}`,
		"{\"receiver\":\"bad utf-8 \xff\xfe, truncated \xe2\x82, ok é\"}",
		"{\"labels\xff\":1,\"receiver\":\"x\"}",
		`{"truncatedAlerts":-0,"x":[1,-1.5e+3,0.25,1E9,true,false,null,{"y":[[]]}]}`,
		`{"truncatedAlerts":1.5}`,
		`{"truncatedAlerts":1e2}`,
		`{"truncatedAlerts":99999999999999999999}`,
		`{"truncatedAlerts":"1"}`,
		`{"receiver":1}`,
		`{"receiver":true}`,
		`{"alerts":{}}`,
		`{"alerts":[1]}`,
		`{"groupLabels":{"a":1}}`,
		`{"alerts":[{"startsAt":"2024-01-02T03:04:05.123456789+02:00","endsAt":"0001-01-01T00:00:00Z"}]}`,
		`{"alerts":[{"startsAt":"2024-01-02T03:04:05\u002b02:00"}]}`,
		`{"alerts":[{"startsAt":"yesterday"}]}`,
		`{"alerts":[{"startsAt":1}]}`,
		`{"receiver":"x",}`,
		`{"receiver":"x"`,
		`{"receiver":"x`,
		`{"receiver":"x\`,
		`{"receiver":"\u12"}`,
		`{"receiver":"\x"}`,
		"{\"receiver\":\"tab\there\"}",
		`{"a":01}`,
		`{"a":-}`,
		`{"a":1.}`,
		`{"a":1e}`,
		`{"a":tru}`,
		`{"a" 1}`,
		`{1:2}`,
		`{"a":1}x`,
		`{"a":1}{}`,
		`null`,
		`"firing"`,
		`[]`,
		"\ufeff{}",
		`{"STATUS":"resolved"}`,
		`{"status":"firing","status":"resolved"}`,
		`{"alerts":[{"Labels":{}}]}`,
		`{"groupLabels":{"a":"1","a":"2"}}`,
		`{"x":1,"x":2}`,
		`{"ſtatus":"resolved"}`,
		`{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
	} {
		sameAsEncodingJSON(t, []byte(body))
	}
}

// TestDecodeDeterministic: the keys encoding/json would let override each
// other are rejected, with the place named.
func TestDecodeDeterministic(t *testing.T) {
	for _, tc := range []struct{ body, err string }{
		{`{"status":"firing","STATUS":"resolved"}`,
			`invalid JSON at byte 19: key "STATUS" differs from "status" only in case`},
		{`{"status":"firing","status":"resolved"}`, `invalid JSON at byte 19: duplicate key "status"`},
		{`{"alerts":[{"labels":{"a":"1"}},{"fingerprint":"x","Fingerprint":"y"}]}`,
			`invalid JSON at byte 51: alerts[1]: key "Fingerprint" differs from "fingerprint" only in case`},
		{`{"alerts":[{"labels":{"a":"1","a":"2"}}]}`, `invalid JSON at byte 30: alerts[0].labels: duplicate key "a"`},
		{`{"extra":1,"extra":2}`, `invalid JSON at byte 11: duplicate key "extra"`},
		{`{"alerts":[{"annotations":{"summary":1}}]}`,
			`invalid JSON at byte 37: alerts[0].annotations."summary": want a string, found a number`},
		{`{"x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
			`invalid JSON at byte 36: nested deeper than 32 levels`},
	} {
		_, err := Decode([]byte(tc.body))
		if err == nil || err.Error() != tc.err {
			t.Errorf("Decode(%s) = %v\nwant %s", tc.body, err, tc.err)
		}
	}
}

// FuzzDecode holds the decoder to encoding/json on any input. Its seeds are
// the recorded payloads; go test runs them and testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, file := range payloadFiles(f) {
		body, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sameAsEncodingJSON(t, body)
		if m, err := Decode(body); err == nil {
			// What is accepted makes an environment exec can take.
			checkEnv(t, Env(m))
		}
	})
}

// BenchmarkDecode compares the decoder with encoding/json on a recorded
// 2-alert notification.
func BenchmarkDecode(b *testing.B) {
	body, err := os.ReadFile("../examples/payloads/firing-diskfull-two-alerts.json")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("amx", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m Message
			if err := decodeMessage(body, &m, 1<<30); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m Message
			if err := json.Unmarshal(body, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
