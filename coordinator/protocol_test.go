package coordinator

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tabgrid/tabgrid/store"
)

func TestParseMessage(t *testing.T) {
	cases := []struct {
		name  string
		msg   string
		hello bool // hello already done
		code  websocket.StatusCode
	}{
		{"hello", `{"type":"hello","version":1,"capacity":4,"name":"n","client":"c"}`, false, 0},
		{"hello unknown fields ignored", `{"type":"hello","version":1,"capacity":0,"extra":[1]}`, false, 0},
		{"hello without version", `{"type":"hello","capacity":4}`, false, 4000},
		{"hello version 2", `{"type":"hello","version":2,"capacity":4}`, false, 1008},
		{"hello without capacity", `{"type":"hello","version":1}`, false, 4000},
		{"hello negative capacity", `{"type":"hello","version":1,"capacity":-1}`, false, 4000},
		{"hello capacity too large", `{"type":"hello","version":1,"capacity":257}`, false, 4000},
		{"hello long name", `{"type":"hello","version":1,"capacity":1,"name":"` + strings.Repeat("x", 101) + `"}`, false, 4000},
		{"second hello", `{"type":"hello","version":1,"capacity":1}`, true, 4001},
		{"heartbeat before hello", `{"type":"heartbeat"}`, false, 4001},
		{"heartbeat", `{"type":"heartbeat"}`, true, 0},
		{"capacity", `{"type":"capacity","capacity":0}`, true, 0},
		{"capacity string", `{"type":"capacity","capacity":"2"}`, true, 4000},
		{"results", `{"type":"results","results":[{"job":"j","index":0,"token":1,"output":{"count":3}},{"job":"j","index":1,"token":2,"error":"boom"}]}`, true, 0},
		{"result without job", `{"type":"results","results":[{"index":0,"token":1,"output":1}]}`, true, 4000},
		{"result negative index", `{"type":"results","results":[{"job":"j","index":-1,"token":1,"output":1}]}`, true, 4000},
		{"result token 0", `{"type":"results","results":[{"job":"j","index":0,"token":0,"output":1}]}`, true, 4000},
		{"result empty error", `{"type":"results","results":[{"job":"j","index":0,"token":1,"error":""}]}`, true, 4000},
		{"result nothing", `{"type":"results","results":[{"job":"j","index":0,"token":1}]}`, true, 4000},
		{"unknown type", `{"type":"gossip"}`, true, 4001},
		{"no type", `{"capacity":1}`, true, 4000},
		{"not json", `{"type":`, true, 4000},
		{"not an object", `[1,2]`, true, 4000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, perr := parseMessage([]byte(tc.msg), tc.hello, 256)
			var got websocket.StatusCode
			if perr != nil {
				got = perr.code
				if len(perr.reason) > 123 {
					t.Errorf("reason %d bytes, over the close frame's 123", len(perr.reason))
				}
			}
			if got != tc.code {
				t.Fatalf("code %d (%v), want %d", got, perr, tc.code)
			}
		})
	}
}

// The hand-written tasks message must be exactly what encoding/json
// would read back.
func TestAppendTasks(t *testing.T) {
	leases := []store.Lease{
		{JobID: "job1", Index: 0, Token: 1, Kind: "primes", Input: json.RawMessage(`{"from":0,"to":10}`), TaskTimeout: 60 * time.Second},
		{JobID: "odd\"<job>\n\u00e9", Index: 7, Token: 3, Kind: "sleep", Input: nil, TaskTimeout: 1500 * time.Millisecond},
	}
	b := appendTasksHeader(nil)
	for i := range leases {
		b = appendTask(b, &leases[i], i == 0)
	}
	b = appendTasksEnd(b)
	var m struct {
		Type  string `json:"type"`
		Tasks []struct {
			Job       string          `json:"job"`
			Index     int             `json:"index"`
			Token     int             `json:"token"`
			Kind      string          `json:"kind"`
			Input     json.RawMessage `json:"input"`
			TimeoutMS int64           `json:"timeout_ms"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if m.Type != "tasks" || len(m.Tasks) != 2 {
		t.Fatalf("decoded %+v", m)
	}
	for i, l := range leases {
		got := m.Tasks[i]
		if got.Job != l.JobID || got.Index != l.Index || got.Token != l.Token || got.Kind != l.Kind || got.TimeoutMS != l.TaskTimeout.Milliseconds() {
			t.Errorf("task %d decoded as %+v from %+v", i, got, l)
		}
	}
	if string(m.Tasks[0].Input) != `{"from":0,"to":10}` || string(m.Tasks[1].Input) != "null" {
		t.Errorf("inputs %s %s", m.Tasks[0].Input, m.Tasks[1].Input)
	}
}

func TestFormatTimeout(t *testing.T) {
	for d, want := range map[time.Duration]string{60 * time.Second: "60s", 300 * time.Millisecond: "300ms", 90 * time.Minute: "5400s"} {
		if got := formatTimeout(d); got != want {
			t.Errorf("formatTimeout(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestClip(t *testing.T) {
	if got := clip("héllo", 2); got != "h" {
		t.Errorf("clip cut a rune: %q", got)
	}
	if got := clip("abc", 5); got != "abc" {
		t.Errorf("clip(abc, 5) = %q", got)
	}
}
