package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// Helpers that build JSON for long or repetitive inputs.

// q quotes s as a JSON string.
func q(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func ptr[T any](v T) *T { return &v }

var (
	sdpOffer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
	candLine = "candidate:1 1 udp 2122260223 192.0.2.10 54321 typ host generation 0"

	maxToken = strings.Repeat("t", MaxTokenLen)
	maxSDP   = strings.Repeat("s", MaxSDPBytes)
	maxID    = strings.Repeat("i", MaxIDLen)
	maxCand  = strings.Repeat("c", MaxCandLen)
	maxMid   = strings.Repeat("m", MaxMidLen)
	// 4000 characters of 3 bytes each: the rune limit, not the byte count, applies.
	maxChat = strings.Repeat("€", MaxChatRunes)
)

type decodeOK struct {
	name string
	in   string
	want Message
}

// validClientMessages are messages a client may send, with what Decode must return.
var validClientMessages = []decodeOK{
	{"recording paused", `{"v":1,"type":"recording","state":"paused","room":"c1"}`,
		Message{V: 1, Type: TypeRecording, State: RecordingPaused, Room: "c1"}},
	{"recording resumed", `{"v":1,"type":"recording","state":"resumed"}`,
		Message{V: 1, Type: TypeRecording, State: RecordingResumed}},
	{"join", `{"v":1,"type":"join","token":"eyJ.a.b"}`,
		Message{V: 1, Type: TypeJoin, Token: "eyJ.a.b"}},
	{"join with id", `{"v":1,"type":"join","id":"r1","token":"eyJ.a.b"}`,
		Message{V: 1, Type: TypeJoin, ID: "r1", Token: "eyJ.a.b"}},
	{"join token at limit", `{"v":1,"type":"join","token":` + q(maxToken) + `}`,
		Message{V: 1, Type: TypeJoin, Token: maxToken}},
	{"available", `{"v":1,"type":"available"}`, Message{V: 1, Type: TypeAvailable}},
	{"resume", `{"v":1,"type":"resume","token":"acme.s1.secret"}`, Message{V: 1, Type: TypeResume, Token: "acme.s1.secret"}},
	{"away", `{"v":1,"type":"away","id":"a"}`, Message{V: 1, Type: TypeAway, ID: "a"}},
	{"hangup", `{"v":1,"type":"hangup"}`, Message{V: 1, Type: TypeHangup}},
	{"accept", `{"v":1,"type":"accept","room":"r-1"}`, Message{V: 1, Type: TypeAccept, Room: "r-1"}},
	{"monitor", `{"v":1,"type":"monitor","room":"r-1"}`, Message{V: 1, Type: TypeMonitor, Room: "r-1"}},
	{"decline", `{"v":1,"type":"decline","room":"r-1","id":"d"}`, Message{V: 1, Type: TypeDecline, Room: "r-1", ID: "d"}},
	{"hangup one call", `{"v":1,"type":"hangup","room":"r-1"}`, Message{V: 1, Type: TypeHangup, Room: "r-1"}},
	{"chat in a call", `{"v":1,"type":"chat","text":"hi","room":"r-1"}`, Message{V: 1, Type: TypeChat, Text: "hi", Room: "r-1"}},
	{"quality by name", `{"v":1,"type":"quality","quality":"low"}`, Message{V: 1, Type: TypeQuality, Quality: QualityLow}},
	{"quality by size", `{"v":1,"type":"quality","width":640,"height":360}`, Message{V: 1, Type: TypeQuality, Width: 640, Height: 360}},
	{"offer pub", `{"v":1,"type":"offer","pc":"pub","sdp":` + q(sdpOffer) + `}`,
		Message{V: 1, Type: TypeOffer, PC: PCPub, SDP: sdpOffer}},
	{"offer sdp at limit", `{"v":1,"type":"offer","pc":"pub","sdp":` + q(maxSDP) + `}`,
		Message{V: 1, Type: TypeOffer, PC: PCPub, SDP: maxSDP}},
	{"answer sub", `{"v":1,"type":"answer","id":"x","pc":"sub","sdp":"v=0\r\n"}`,
		Message{V: 1, Type: TypeAnswer, ID: "x", PC: PCSub, SDP: "v=0\r\n"}},
	{"answer sdp at limit", `{"v":1,"type":"answer","pc":"sub","sdp":` + q(maxSDP) + `}`,
		Message{V: 1, Type: TypeAnswer, PC: PCSub, SDP: maxSDP}},
	{"candidate pub full",
		`{"v":1,"type":"candidate","pc":"pub","candidate":{"candidate":` + q(candLine) + `,"sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}}`,
		Message{V: 1, Type: TypeCandidate, PC: PCPub, Candidate: &ICECandidate{
			Candidate: candLine, SDPMid: ptr("0"), SDPMLineIndex: ptr(uint16(0)), UsernameFragment: ptr("abcd")}}},
	{"candidate sub only line", `{"v":1,"type":"candidate","pc":"sub","candidate":{"candidate":` + q(candLine) + `}}`,
		Message{V: 1, Type: TypeCandidate, PC: PCSub, Candidate: &ICECandidate{Candidate: candLine}}},
	{"candidate null", `{"v":1,"type":"candidate","pc":"pub","candidate":null}`,
		Message{V: 1, Type: TypeCandidate, PC: PCPub}},
	{"candidate absent", `{"v":1,"type":"candidate","pc":"sub"}`,
		Message{V: 1, Type: TypeCandidate, PC: PCSub}},
	{"candidate empty line", `{"v":1,"type":"candidate","pc":"sub","candidate":{"candidate":"","sdpMid":"0"}}`,
		Message{V: 1, Type: TypeCandidate, PC: PCSub, Candidate: &ICECandidate{SDPMid: ptr("0")}}},
	{"candidate fields at limits",
		`{"v":1,"type":"candidate","pc":"pub","candidate":{"candidate":` + q(maxCand) + `,"sdpMid":` + q(maxMid) + `,"sdpMLineIndex":65535,"usernameFragment":` + q(maxCand) + `}}`,
		Message{V: 1, Type: TypeCandidate, PC: PCPub, Candidate: &ICECandidate{
			Candidate: maxCand, SDPMid: ptr(maxMid), SDPMLineIndex: ptr(uint16(65535)), UsernameFragment: ptr(maxCand)}}},
	{"chat", `{"v":1,"type":"chat","text":"hello"}`, Message{V: 1, Type: TypeChat, Text: "hello"}},
	{"chat escapes", `{"v":1,"type":"chat","text":"caf\u00e9 \ud83d\ude00 \"q\"\n<b>"}`,
		Message{V: 1, Type: TypeChat, Text: "café 😀 \"q\"\n<b>"}},
	{"chat at rune limit", `{"v":1,"type":"chat","text":` + q(maxChat) + `}`,
		Message{V: 1, Type: TypeChat, Text: maxChat}},
	{"id at limit", `{"v":1,"type":"hangup","id":` + q(maxID) + `}`,
		Message{V: 1, Type: TypeHangup, ID: maxID}},
	{"fields in any order, whitespace around", " \r\n\t{ \"token\" : \"t\", \"type\":\"join\" , \"v\": 1 }\n ",
		Message{V: 1, Type: TypeJoin, Token: "t"}},
	// Unused fields "must be absent or empty": empty values are accepted.
	{"empty unused fields", `{"v":1,"type":"hangup","id":"","token":"","pc":"","sdp":"","text":"","candidate":null,"position":0,"from":null,"reason":"","iceServers":null}`,
		Message{V: 1, Type: TypeHangup}},
}

func TestDecodeValid(t *testing.T) {
	for _, c := range validClientMessages {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode([]byte(c.in))
			if err != nil {
				t.Fatalf("Decode: unexpected error %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Decode =\n  %#v\nwant\n  %#v", got, c.want)
			}
		})
	}
}

type decodeBad struct {
	name string
	in   string
	code Code
	id   string // ID Decode must return so the error can echo it ("" = none)
	has  string // optional: a substring of the error's message
}

const (
	bad = CodeBadMessage
	ver = CodeUnsupportedVersion
)

// serverOnlyFields are fields only the server sends, each with a non-empty value.
var serverOnlyFields = map[string]string{
	"from":       `{"role":"agent","name":"Ann"}`,
	"ts":         `1700000000000`,
	"session":    `"s1"`,
	"role":       `"agent"`,
	"org":        `"acme"`,
	"queue":      `"sales"`,
	"limits":     `{"maxMessageBytes":65536,"messagesPerSecond":20,"burst":40}`,
	"resume":     `"acme.s.x"`,
	"position":   `1`,
	"length":     `3`,
	"wait":       `60`,
	"timeout":    `20`,
	"stats":      `{"waiting":1}`,
	"peer":       `{"role":"customer"}`,
	"iceServers": `[]`,
	"reason":     `"hangup"`,
	"code":       `"bad_message"`,
	"message":    `"hi"`,
	"ref":        `"r0"`,
}

func invalidClientMessages() []decodeBad {
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	deepObj := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	cs := []decodeBad{
		// accept, decline
		{name: "accept without room", in: `{"v":1,"type":"accept","id":"a"}`, code: bad, id: "a", has: "room"},
		{name: "decline long room", in: `{"v":1,"type":"decline","room":"` + strings.Repeat("r", 65) + `"}`, code: bad, has: "room"},
		{name: "accept with text", in: `{"v":1,"type":"accept","room":"r","text":"hi"}`, code: bad, has: "text"},
		{name: "monitor without room", in: `{"v":1,"type":"monitor","id":"m"}`, code: bad, id: "m", has: "room"},
		{name: "monitor with sdp", in: `{"v":1,"type":"monitor","room":"r","sdp":"v=0"}`, code: bad, has: "sdp"},
		{name: "available with room", in: `{"v":1,"type":"available","room":"r"}`, code: bad, has: "room"},
		{name: "chat long room", in: `{"v":1,"type":"chat","text":"hi","room":"` + strings.Repeat("r", 65) + `"}`, code: bad, has: "room"},
		// join
		{name: "join without token", in: `{"v":1,"type":"join","id":"j"}`, code: bad, id: "j", has: "token"},
		{name: "join empty token", in: `{"v":1,"type":"join","id":"j","token":""}`, code: bad, id: "j", has: "token"},
		{name: "join token too long", in: `{"v":1,"type":"join","id":"j","token":` + q(maxToken+"t") + `}`, code: bad, id: "j", has: "token"},
		{name: "join token not a string", in: `{"v":1,"type":"join","id":"j","token":42}`, code: bad, id: "j", has: "token"},
		{name: "join with pc", in: `{"v":1,"type":"join","id":"j","token":"t","pc":"pub"}`, code: bad, id: "j", has: "pc"},
		{name: "join with text", in: `{"v":1,"type":"join","token":"t","text":"hi"}`, code: bad, has: "text"},

		// available, away, hangup take no fields
		{name: "available with token", in: `{"v":1,"type":"available","id":"a","token":"t"}`, code: bad, id: "a", has: "token"},
		{name: "away with sdp", in: `{"v":1,"type":"away","id":"a","sdp":"v=0"}`, code: bad, id: "a", has: "sdp"},
		{name: "hangup with text", in: `{"v":1,"type":"hangup","id":"h","text":"bye"}`, code: bad, id: "h", has: "text"},
		{name: "quality empty", in: `{"v":1,"type":"quality","id":"q"}`, code: bad, id: "q"},
		{name: "quality unknown name", in: `{"v":1,"type":"quality","id":"q","quality":"ultra"}`, code: bad, id: "q", has: "low"},
		{name: "quality name and size", in: `{"v":1,"type":"quality","id":"q","quality":"low","width":1,"height":1}`, code: bad, id: "q", has: "not both"},
		{name: "quality width only", in: `{"v":1,"type":"quality","id":"q","width":640}`, code: bad, id: "q"},
		{name: "quality negative", in: `{"v":1,"type":"quality","id":"q","width":-1,"height":5}`, code: bad, id: "q"},
		{name: "quality too large", in: `{"v":1,"type":"quality","id":"q","width":9000,"height":5}`, code: bad, id: "q"},
		{name: "chat with quality", in: `{"v":1,"type":"chat","id":"c","text":"hi","quality":"low"}`, code: bad, id: "c", has: "quality"},
		{name: "hangup with candidate", in: `{"v":1,"type":"hangup","candidate":{"candidate":"x"}}`, code: bad, has: "candidate"},

		// offer
		{name: "offer pc sub", in: `{"v":1,"type":"offer","id":"o","pc":"sub","sdp":"v=0"}`, code: bad, id: "o", has: "pub"},
		{name: "offer pc missing", in: `{"v":1,"type":"offer","id":"o","sdp":"v=0"}`, code: bad, id: "o", has: "pc"},
		{name: "offer pc unknown", in: `{"v":1,"type":"offer","id":"o","pc":"main","sdp":"v=0"}`, code: bad, id: "o"},
		{name: "offer pc wrong case", in: `{"v":1,"type":"offer","pc":"PUB","sdp":"v=0"}`, code: bad},
		{name: "offer sdp missing", in: `{"v":1,"type":"offer","id":"o","pc":"pub"}`, code: bad, id: "o", has: "sdp"},
		{name: "offer sdp empty", in: `{"v":1,"type":"offer","id":"o","pc":"pub","sdp":""}`, code: bad, id: "o", has: "sdp"},
		{name: "offer sdp too long", in: `{"v":1,"type":"offer","id":"o","pc":"pub","sdp":` + q(maxSDP+"s") + `}`, code: bad, id: "o", has: "sdp"},
		{name: "offer sdp not a string", in: `{"v":1,"type":"offer","id":"o","pc":"pub","sdp":{"type":"offer"}}`, code: bad, id: "o"},
		{name: "offer with candidate", in: `{"v":1,"type":"offer","id":"o","pc":"pub","sdp":"v=0","candidate":{"candidate":"x"}}`, code: bad, id: "o", has: "candidate"},

		// answer
		{name: "answer pc pub", in: `{"v":1,"type":"answer","id":"a","pc":"pub","sdp":"v=0"}`, code: bad, id: "a", has: "sub"},
		{name: "answer pc missing", in: `{"v":1,"type":"answer","id":"a","sdp":"v=0"}`, code: bad, id: "a"},
		{name: "answer sdp missing", in: `{"v":1,"type":"answer","id":"a","pc":"sub"}`, code: bad, id: "a", has: "sdp"},
		{name: "answer sdp too long", in: `{"v":1,"type":"answer","pc":"sub","sdp":` + q(maxSDP+"s") + `}`, code: bad, has: "sdp"},
		{name: "answer with text", in: `{"v":1,"type":"answer","pc":"sub","sdp":"v=0","text":"x"}`, code: bad, has: "text"},

		// candidate
		{name: "candidate pc missing", in: `{"v":1,"type":"candidate","id":"c","candidate":{"candidate":"x"}}`, code: bad, id: "c", has: "pc"},
		{name: "candidate pc unknown", in: `{"v":1,"type":"candidate","id":"c","pc":"both","candidate":{"candidate":"x"}}`, code: bad, id: "c"},
		{name: "candidate line too long", in: `{"v":1,"type":"candidate","id":"c","pc":"pub","candidate":{"candidate":` + q(maxCand+"c") + `}}`, code: bad, id: "c"},
		{name: "candidate sdpMid too long", in: `{"v":1,"type":"candidate","id":"c","pc":"pub","candidate":{"candidate":"x","sdpMid":` + q(maxMid+"m") + `}}`, code: bad, id: "c"},
		{name: "candidate ufrag too long", in: `{"v":1,"type":"candidate","id":"c","pc":"sub","candidate":{"candidate":"x","usernameFragment":` + q(maxCand+"u") + `}}`, code: bad, id: "c"},
		{name: "candidate mline negative", in: `{"v":1,"type":"candidate","id":"c","pc":"pub","candidate":{"candidate":"x","sdpMLineIndex":-1}}`, code: bad, id: "c"},
		{name: "candidate mline over uint16", in: `{"v":1,"type":"candidate","id":"c","pc":"pub","candidate":{"candidate":"x","sdpMLineIndex":65536}}`, code: bad, id: "c"},
		{name: "candidate mline fraction", in: `{"v":1,"type":"candidate","pc":"pub","candidate":{"candidate":"x","sdpMLineIndex":0.5}}`, code: bad},
		{name: "candidate as string", in: `{"v":1,"type":"candidate","id":"c","pc":"pub","candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host"}`, code: bad, id: "c"},
		{name: "candidate unknown inner field", in: `{"v":1,"type":"candidate","id":"c","pc":"pub","candidate":{"candidate":"x","foundation":"1"}}`, code: bad, id: "c", has: "foundation"},
		{name: "candidate with sdp", in: `{"v":1,"type":"candidate","id":"c","pc":"pub","sdp":"v=0"}`, code: bad, id: "c", has: "sdp"},

		// chat
		{name: "chat text missing", in: `{"v":1,"type":"chat","id":"m"}`, code: bad, id: "m", has: "text"},
		{name: "chat text empty", in: `{"v":1,"type":"chat","id":"m","text":""}`, code: bad, id: "m", has: "text"},
		{name: "chat too long", in: `{"v":1,"type":"chat","id":"m","text":` + q(strings.Repeat("a", MaxChatRunes+1)) + `}`, code: bad, id: "m", has: "4001"},
		{name: "chat too long multibyte", in: `{"v":1,"type":"chat","id":"m","text":` + q(maxChat+"€") + `}`, code: bad, id: "m"},
		{name: "chat invalid UTF-8 byte", in: "{\"v\":1,\"type\":\"chat\",\"id\":\"m\",\"text\":\"a\xffb\"}", code: bad, id: "m"},
		{name: "chat truncated UTF-8 sequence", in: "{\"v\":1,\"type\":\"chat\",\"id\":\"m\",\"text\":\"\xe2\x82\"}", code: bad, id: "m"},
		{name: "state on hangup", in: `{"v":1,"type":"hangup","id":"h","state":"paused"}`, code: bad, id: "h", has: `"state"`},
		{name: "recording without state", in: `{"v":1,"type":"recording","id":"r"}`, code: bad, id: "r", has: "recording needs state"},
		{name: "recording started from client", in: `{"v":1,"type":"recording","id":"r","state":"started"}`, code: bad, id: "r", has: "recording needs state"},
		{name: "recording with text", in: `{"v":1,"type":"recording","id":"r","state":"paused","text":"x"}`, code: bad, id: "r", has: `"text"`},
		{name: "chat from client has from", in: `{"v":1,"type":"chat","id":"m","text":"hi","from":{"role":"agent"}}`, code: bad, id: "m", has: "server-only"},
		{name: "chat text not a string", in: `{"v":1,"type":"chat","id":"m","text":["hi"]}`, code: bad, id: "m"},

		// type
		{name: "unknown type", in: `{"v":1,"type":"subscribe","id":"u"}`, code: bad, id: "u", has: "subscribe"},
		{name: "unknown type long is truncated", in: `{"v":1,"type":` + q(strings.Repeat("x", 500)) + `}`, code: bad},
		{name: "server type sent by client", in: `{"v":1,"type":"welcome","id":"u"}`, code: bad, id: "u", has: "welcome"},
		{name: "error type sent by client", in: `{"v":1,"type":"error","code":"bad_message"}`, code: bad},
		{name: "speaker sent by client", in: `{"v":1,"type":"speaker","id":"s"}`, code: bad, id: "s", has: "speaker"},
		{name: "speaker with role sent by client", in: `{"v":1,"type":"speaker","role":"agent"}`, code: bad},
		{name: "type wrong case", in: `{"v":1,"type":"JOIN","token":"t"}`, code: bad},
		{name: "empty type", in: `{"v":1,"type":"","id":"e"}`, code: bad, id: "e", has: "type"},
		{name: "type missing", in: `{"v":1,"id":"e"}`, code: bad, id: "e", has: "type"},
		{name: "type not a string", in: `{"v":1,"type":7,"id":"e"}`, code: bad, id: "e"},

		// unknown fields
		{name: "unknown field", in: `{"v":1,"type":"hangup","id":"f","force":true}`, code: bad, id: "f", has: "force"},
		{name: "unknown field before id", in: `{"zzz":null,"v":1,"type":"hangup","id":"f"}`, code: bad, id: "f"},

		// version
		{name: "version 2", in: `{"v":2,"type":"join","id":"v","token":"t"}`, code: ver, id: "v"},
		{name: "version 0", in: `{"v":0,"type":"join","id":"v","token":"t"}`, code: ver, id: "v"},
		{name: "version negative", in: `{"v":-1,"type":"hangup","id":"v"}`, code: ver, id: "v"},
		{name: "version missing", in: `{"type":"join","id":"v","token":"t"}`, code: ver, id: "v"},
		{name: "version null", in: `{"v":null,"type":"join","id":"v","token":"t"}`, code: ver, id: "v"},
		{name: "unknown field is reported before the version", in: `{"v":2,"type":"future_type","id":"v","extra":1}`, code: bad, id: "v"},
		{name: "version 2 unknown type", in: `{"v":2,"type":"future_type","id":"v"}`, code: ver, id: "v"},
		{name: "version as string", in: `{"v":"1","type":"hangup","id":"v"}`, code: bad, id: "v"},
		{name: "version fraction", in: `{"v":1.5,"type":"hangup","id":"v"}`, code: bad, id: "v"},
		{name: "version huge", in: `{"v":1e400,"type":"hangup","id":"v"}`, code: bad, id: "v"},

		// id
		{name: "id too long is not echoed", in: `{"v":1,"type":"hangup","id":` + q(maxID+"i") + `}`, code: bad, has: "id"},
		{name: "id too long with bad JSON", in: `{"v":1,"type":"hangup","id":` + q(maxID+"i") + `,"x":1}`, code: bad},
		{name: "id not a string", in: `{"v":1,"type":"hangup","id":12}`, code: bad},

		// framing
		{name: "trailing object", in: `{"v":1,"type":"hangup","id":"t"}{"v":1,"type":"hangup"}`, code: bad, id: "t", has: "trailing"},
		{name: "trailing garbage", in: `{"v":1,"type":"hangup","id":"t"} x`, code: bad, id: "t", has: "trailing"},
		{name: "trailing comma", in: `{"v":1,"type":"hangup","id":"t"},`, code: bad, id: "t"},
		{name: "trailing close brace", in: `{"v":1,"type":"hangup","id":"t"}}`, code: bad, id: "t"},
		{name: "trailing close bracket", in: `{"v":1,"type":"hangup","id":"t"} ]`, code: bad, id: "t"},
		{name: "empty input", in: ``, code: bad},
		{name: "whitespace only", in: " \n\t", code: bad},
		{name: "truncated object", in: `{"v":1,"type":"hangup"`, code: bad},
		{name: "single quotes", in: `{'v':1,'type':'hangup'}`, code: bad},
		{name: "comment", in: `{"v":1,"type":"hangup"} // bye`, code: bad},
		{name: "NaN", in: `{"v":NaN,"type":"hangup"}`, code: bad},
		{name: "syntax error keeps no id", in: `{"id":"s","v":1,"type":"hangup",}`, code: bad},

		// non-object JSON
		{name: "array", in: `[{"v":1,"type":"hangup"}]`, code: bad},
		{name: "string", in: `"hangup"`, code: bad},
		{name: "number", in: `1`, code: bad},
		{name: "bool", in: `true`, code: bad},
		{name: "null", in: `null`, code: bad},

		// duplicate keys (encoding/json would keep the last) and keys that
		// match a field only when case is ignored (the same, in disguise)
		{name: "type twice", in: `{"v":1,"id":"d","type":"chat","text":"hi","type":"hangup"}`, code: bad, id: "d", has: `duplicate key "type"`},
		{name: "v twice", in: `{"v":2,"v":1,"type":"hangup"}`, code: bad, has: `duplicate key "v"`},
		{name: "id twice", in: `{"v":1,"type":"hangup","id":"a","id":"b"}`, code: bad, has: `duplicate key "id"`},
		{name: "token twice", in: `{"v":1,"type":"join","token":"a","token":"b"}`, code: bad, has: `duplicate key "token"`},
		{name: "escaped duplicate", in: `{"v":1,"type":"hangup","\u0074ype":"chat"}`, code: bad, has: `duplicate key "type"`},
		{name: "candidate key twice", in: `{"v":1,"type":"candidate","pc":"pub","candidate":{"candidate":"a","candidate":"b"}}`, code: bad, has: `duplicate key "candidate"`},
		{name: "type in another case", in: `{"v":1,"id":"d","type":"chat","text":"hi","Type":"hangup"}`, code: bad, id: "d", has: `"Type"`},
		{name: "all in capitals", in: `{"V":1,"TYPE":"hangup"}`, code: bad, has: "case-sensitive"},
		{name: "candidate key in another case", in: `{"v":1,"type":"candidate","pc":"pub","candidate":{"candidate":"a","SDPMid":"0"}}`, code: bad, has: `"SDPMid"`},

		// garbage
		{name: "deeply nested array in unknown field", in: `{"v":1,"type":"hangup","id":"d","x":` + deep + `}`, code: bad},
		{name: "deeply nested object in known field", in: `{"v":1,"type":"candidate","pc":"pub","candidate":` + deepObj + `}`, code: bad},
		{name: "deeply nested bare", in: deep, code: bad},
		{name: "moderately nested in unknown field", in: `{"v":1,"type":"hangup","id":"d","x":` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `}`, code: bad, id: "d"},
		{name: "binary garbage", in: "\x00\x01\x02\xff\xfe", code: bad},
	}
	for name, val := range serverOnlyFields {
		cs = append(cs, decodeBad{
			name: "server-only field " + name,
			in:   `{"v":1,"type":"hangup","id":"s","` + name + `":` + val + `}`,
			code: bad, id: "s", has: "server-only",
		})
	}
	return cs
}

func TestDecodeInvalid(t *testing.T) {
	for _, c := range invalidClientMessages() {
		t.Run(c.name, func(t *testing.T) {
			m, err := Decode([]byte(c.in))
			var problems []string
			var pe *Error
			switch {
			case err == nil:
				problems = append(problems, fmt.Sprintf("Decode accepted it: %+v", m))
			case !errors.As(err, &pe):
				problems = append(problems, fmt.Sprintf("error %v (%T) is not a *Error", err, err))
			default:
				if pe.Code != c.code {
					problems = append(problems, fmt.Sprintf("code %q (%s), want %q", pe.Code, pe.Message, c.code))
				}
				if c.has != "" && !strings.Contains(pe.Message, c.has) {
					problems = append(problems, fmt.Sprintf("message %q does not mention %q", pe.Message, c.has))
				}
				if len(pe.Message) > 200 {
					problems = append(problems, fmt.Sprintf("message is %d bytes; it should stay short", len(pe.Message)))
				}
			}
			if m.ID != c.id {
				problems = append(problems, fmt.Sprintf("returned ID %q, want %q", m.ID, c.id))
			}
			if err != nil {
				// The error must become a well-formed error message that refers to the request.
				em := ErrorMessage(err, m.ID)
				b, eerr := Encode(em)
				if eerr != nil {
					problems = append(problems, fmt.Sprintf("encode error message: %v", eerr))
				} else if c.id != "" && !strings.Contains(string(b), `"ref":`+q(c.id)) {
					problems = append(problems, fmt.Sprintf("error message %s does not refer to %q", b, c.id))
				}
			}
			reportProblems(t, problems)
		})
	}
}

// reportProblems fails the test with each problem found.
func reportProblems(t *testing.T, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Error(p)
	}
}

func TestEncode(t *testing.T) {
	cases := []struct {
		name string
		in   Message
		want string
	}{
		{"sets version when zero", Message{Type: TypeBye, Reason: ReasonShutdown},
			`{"v":1,"type":"bye","reason":"shutdown"}`},
		{"overrides a wrong version", Message{V: 7, Type: TypeEnded, Reason: ReasonPeerLeft},
			`{"v":1,"type":"ended","reason":"peer_left"}`},
		{"only type", Message{Type: TypeHangup}, `{"v":1,"type":"hangup"}`},
		{"welcome",
			Message{Type: TypeWelcome, Session: "s-1", Role: RoleCustomer, Org: "acme", Queue: "support",
				Limits: &Limits{MaxMessageBytes: 65536, MessagesPerSec: 20, Burst: 40}},
			`{"v":1,"type":"welcome","session":"s-1","role":"customer","org":"acme","queue":"support","limits":{"maxMessageBytes":65536,"messagesPerSecond":20,"burst":40}}`},
		{"queued", Message{Type: TypeQueued, Queue: "support", Position: 2, Length: 5},
			`{"v":1,"type":"queued","queue":"support","position":2,"length":5}`},
		{"agent_state", Message{Type: TypeAgentState, State: AgentBusy},
			`{"v":1,"type":"agent_state","state":"busy"}`},
		{"assigned",
			Message{Type: TypeAssigned, Room: "r-9", Peer: &Peer{Role: RoleAgent, Name: "Ann"},
				ICEServers: []ICEServer{{URLs: []string{"stun:stun.example.com:3478"}},
					{URLs: []string{"turn:turn.example.com:3478?transport=udp"}, Username: "1700000000:s-1", Credential: "c3VwZXI="}}},
			`{"v":1,"type":"assigned","room":"r-9","peer":{"role":"agent","name":"Ann"},"iceServers":[{"urls":["stun:stun.example.com:3478"]},{"urls":["turn:turn.example.com:3478?transport=udp"],"username":"1700000000:s-1","credential":"c3VwZXI="}]}`},
		{"peer without name", Message{Type: TypeAssigned, Room: "r", Peer: &Peer{Role: RoleCustomer}},
			`{"v":1,"type":"assigned","room":"r","peer":{"role":"customer"}}`},
		{"speaker", Message{Type: TypeSpeaker, Role: RoleCustomer}, `{"v":1,"type":"speaker","role":"customer"}`},
		{"speaker nobody", Message{Type: TypeSpeaker}, `{"v":1,"type":"speaker"}`},
		{"server offer", Message{Type: TypeOffer, PC: PCSub, SDP: "v=0\r\n"},
			`{"v":1,"type":"offer","pc":"sub","sdp":"v=0\r\n"}`},
		{"candidate keeps zero mline index", Message{Type: TypeCandidate, PC: PCPub,
			Candidate: &ICECandidate{Candidate: "candidate:1", SDPMid: ptr("0"), SDPMLineIndex: ptr(uint16(0))}},
			`{"v":1,"type":"candidate","pc":"pub","candidate":{"candidate":"candidate:1","sdpMid":"0","sdpMLineIndex":0}}`},
		{"end of candidates omits candidate", Message{Type: TypeCandidate, PC: PCSub},
			`{"v":1,"type":"candidate","pc":"sub"}`},
		{"chat from server", Message{Type: TypeChat, Text: "hi <there>", From: &Peer{Role: RoleAgent, Name: "Ann"}, TS: 1700000000123},
			`{"v":1,"type":"chat","text":"hi \u003cthere\u003e","from":{"role":"agent","name":"Ann"},"ts":1700000000123}`},
		{"error", Message{Type: TypeError, Code: string(CodeBadSDP), Message: "no", Ref: "o1"},
			`{"v":1,"type":"error","code":"bad_sdp","message":"no","ref":"o1"}`},
		{"empty slices and zero numbers are omitted", Message{Type: TypeQueued, ICEServers: []ICEServer{}, Position: 0, TS: 0},
			`{"v":1,"type":"queued"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Encode(c.in)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if string(b) != c.want {
				t.Errorf("Encode =\n  %s\nwant\n  %s", b, c.want)
			}
		})
	}
}

func TestEncodeDoesNotModifyArgument(t *testing.T) {
	m := Message{V: 0, Type: TypeBye}
	if _, err := Encode(m); err != nil {
		t.Fatal(err)
	}
	if m.V != 0 {
		t.Errorf("Encode changed the caller's message: V=%d", m.V)
	}
}

func TestEncodeError(t *testing.T) {
	_, err := Encode(Message{Type: TypeWelcome, Limits: &Limits{MessagesPerSec: math.Inf(1)}})
	if err == nil {
		t.Fatal("Encode of an unencodable value succeeded")
	}
	if !strings.Contains(err.Error(), "welcome") {
		t.Errorf("error %q does not name the message type", err)
	}
}

// A valid client message survives Encode and Decode unchanged.
func TestEncodedClientMessagesDecode(t *testing.T) {
	for _, c := range validClientMessages {
		b, err := Encode(c.want)
		if err != nil {
			t.Fatalf("%s: Encode: %v", c.name, err)
		}
		got, err := Decode(b)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Decode(Encode(m)) = %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	t.Run("protocol error", func(t *testing.T) {
		m := ErrorMessage(Errorf(CodeBadSDP, "could not apply %s", "offer"), "o1")
		want := Message{V: Version, Type: TypeError, Code: "bad_sdp", Message: "could not apply offer", Ref: "o1"}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("ErrorMessage = %+v, want %+v", m, want)
		}
	})
	t.Run("wrapped protocol error keeps its code", func(t *testing.T) {
		err := fmt.Errorf("handle join: %w", Errorf(CodeTokenExpired, "token expired"))
		m := ErrorMessage(err, "")
		if m.Code != string(CodeTokenExpired) || m.Message != "token expired" || m.Ref != "" {
			t.Errorf("ErrorMessage = %+v", m)
		}
		b, _ := Encode(m)
		if strings.Contains(string(b), "handle join") || strings.Contains(string(b), `"ref"`) {
			t.Errorf("encoded %s leaks the wrapping or sets an empty ref", b)
		}
	})
	t.Run("plain error becomes internal_error", func(t *testing.T) {
		secret := "dial tcp 10.0.0.7:6379: redis password s3cr3t rejected for user alice@example.com"
		err := fmt.Errorf("place customer: %w", errors.New(secret))
		m := ErrorMessage(err, "j1")
		if m.V != Version || m.Type != TypeError || m.Code != string(CodeInternal) || m.Ref != "j1" {
			t.Errorf("ErrorMessage = %+v", m)
		}
		b, eerr := Encode(m)
		if eerr != nil {
			t.Fatal(eerr)
		}
		for _, leak := range []string{"10.0.0.7", "6379", "redis", "s3cr3t", "alice", "place customer", "dial"} {
			if strings.Contains(string(b), leak) {
				t.Errorf("error message %s leaks %q from the wrapped error", b, leak)
			}
		}
		if m.Message == "" {
			t.Error("internal_error has no human-readable message")
		}
	})
	t.Run("Error string", func(t *testing.T) {
		if got := Errorf(CodeQueueFull, "queue %q is full", "sales").Error(); got != `queue_full: queue "sales" is full` {
			t.Errorf("Error() = %q", got)
		}
	})
}

func TestAsError(t *testing.T) {
	pe := Errorf(CodeRateLimited, "slow down")
	if got := AsError(fmt.Errorf("x: %w", pe)); got != pe {
		t.Errorf("AsError of a wrapped *Error = %v, want the same *Error", got)
	}
	if got := AsError(errors.New("boom")); got.Code != CodeInternal || strings.Contains(got.Message, "boom") {
		t.Errorf("AsError(plain) = %v", got)
	}
}
