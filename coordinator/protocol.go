package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/tabgrid/tabgrid/store"
)

// The tab protocol, version 1 (docs/protocol.md). Messages from tabs are
// decoded into one struct; messages to tabs are appended by hand into
// byte slices, because the tasks message is on the hot path and
// encoding/json would reflect over every lease.

// Subprotocol is the WebSocket subprotocol a tab must offer.
const Subprotocol = "tabgrid.v1"

// ProtocolVersion is the only hello version this coordinator speaks.
const ProtocolVersion = 1

const maxNameBytes = 100

// Close codes of the protocol, besides the standard 1001, 1008 and 1009.
const (
	closeMalformed  websocket.StatusCode = 4000
	closeUnexpected websocket.StatusCode = 4001
	closeHeartbeat  websocket.StatusCode = 4002
	closeHello      websocket.StatusCode = 4003
	closeTooSlow    websocket.StatusCode = 4004
)

// inMessage is any message a tab sends. Pointers tell a missing field
// from a zero one where the difference matters.
type inMessage struct {
	Type     string     `json:"type"`
	Version  *int       `json:"version"`
	Capacity *int       `json:"capacity"`
	Name     string     `json:"name"`
	Client   string     `json:"client"`
	Results  []inResult `json:"results"`
}

type inResult struct {
	Job    string          `json:"job"`
	Index  int             `json:"index"`
	Token  int             `json:"token"`
	Output json.RawMessage `json:"output"`
	Error  *string         `json:"error"`
}

// protocolError is a refusal: the socket is closed with code and reason.
type protocolError struct {
	code   websocket.StatusCode
	reason string
}

func (e *protocolError) Error() string { return fmt.Sprintf("close %d: %s", e.code, e.reason) }

func malformed(format string, args ...any) *protocolError {
	return &protocolError{code: closeMalformed, reason: "malformed message: " + fmt.Sprintf(format, args...)}
}

func unexpected(format string, args ...any) *protocolError {
	return &protocolError{code: closeUnexpected, reason: "unexpected message: " + fmt.Sprintf(format, args...)}
}

// parseMessage decodes and checks one message. helloDone says whether
// the tab already said hello; maxCapacity bounds capacities.
func parseMessage(data []byte, helloDone bool, maxCapacity int) (inMessage, *protocolError) {
	var m inMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return m, malformed("%s", jsonErrorText(err))
	}
	switch m.Type {
	case "":
		return m, malformed("no type")
	case "hello":
		if helloDone {
			return m, unexpected("second hello")
		}
		if m.Version == nil {
			return m, malformed("hello needs version")
		}
		if *m.Version != ProtocolVersion {
			return m, &protocolError{code: websocket.StatusPolicyViolation,
				reason: "protocol version " + strconv.Itoa(*m.Version) + " not supported"}
		}
		if err := checkCapacity(m.Capacity, maxCapacity); err != nil {
			return m, err
		}
		if len(m.Name) > maxNameBytes {
			return m, malformed("name longer than %d bytes", maxNameBytes)
		}
		if len(m.Client) > maxNameBytes {
			return m, malformed("client longer than %d bytes", maxNameBytes)
		}
		return m, nil
	}
	if !helloDone {
		return m, unexpected("%s before hello", clip(m.Type, 40))
	}
	switch m.Type {
	case "heartbeat":
	case "capacity":
		if err := checkCapacity(m.Capacity, maxCapacity); err != nil {
			return m, err
		}
	case "results":
		for i := range m.Results {
			r := &m.Results[i]
			switch {
			case r.Job == "":
				return m, malformed("result %d has no job", i)
			case r.Index < 0:
				return m, malformed("result %d has a negative index", i)
			case r.Token < 1:
				return m, malformed("result %d has no token", i)
			case r.Error != nil && *r.Error == "":
				return m, malformed("result %d has an empty error", i)
			case r.Error == nil && (len(r.Output) == 0):
				return m, malformed("result %d has neither output nor error", i)
			}
		}
	default:
		return m, unexpected("unknown type %q", clip(m.Type, 40))
	}
	return m, nil
}

func checkCapacity(c *int, max int) *protocolError {
	if c == nil {
		return malformed("capacity is required")
	}
	if *c < 0 || *c > max {
		return malformed("capacity %d not within 0..%d", *c, max)
	}
	return nil
}

// jsonErrorText shortens encoding/json's errors to fit a close reason.
func jsonErrorText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "not JSON at byte " + strconv.FormatInt(se.Offset, 10)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "field " + clip(te.Field, 40) + " is not a " + te.Type.String()
	}
	return clip(err.Error(), 80)
}

// clip cuts s to at most n bytes on a rune boundary; close reasons are
// limited to 123 bytes.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// welcomeMessage is sent once, after hello.
type welcomeMessage struct {
	Type            string `json:"type"`
	Version         int    `json:"version"`
	WorkerID        string `json:"worker_id"`
	Coordinator     string `json:"coordinator"`
	HeartbeatMS     int64  `json:"heartbeat_ms"`
	Prefetch        int    `json:"prefetch"`
	MaxMessageBytes int64  `json:"max_message_bytes"`
}

// appendTasksHeader, appendTask and appendTasksEnd build one tasks
// message: {"type":"tasks","tasks":[{job,index,token,kind,input,timeout_ms},...]}.
func appendTasksHeader(b []byte) []byte {
	return append(b, `{"type":"tasks","tasks":[`...)
}

func appendTask(b []byte, l *store.Lease, first bool) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, `{"job":`...)
	b = appendJSONString(b, l.JobID)
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, int64(l.Index), 10)
	b = append(b, `,"token":`...)
	b = strconv.AppendInt(b, int64(l.Token), 10)
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, l.Kind)
	b = append(b, `,"input":`...)
	if len(l.Input) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, l.Input...)
	}
	b = append(b, `,"timeout_ms":`...)
	b = strconv.AppendInt(b, int64(l.TaskTimeout/time.Millisecond), 10)
	return append(b, '}')
}

func appendTasksEnd(b []byte) []byte { return append(b, "]}"...) }

// taskRef names one task of one lease in a cancel message.
type taskRef struct {
	Job   string `json:"job"`
	Index int    `json:"index"`
	Token int    `json:"token"`
}

type cancelMessage struct {
	Type   string    `json:"type"`
	Tasks  []taskRef `json:"tasks"`
	Reason string    `json:"reason"`
}

// Cancel reasons.
const (
	reasonCancelled = "cancelled"
	reasonTimeout   = "timeout"
	reasonRevoked   = "revoked"
)

func encodeCancel(refs []taskRef, reason string) []byte {
	b, _ := json.Marshal(cancelMessage{Type: "cancel", Tasks: refs, Reason: reason})
	return b
}

// appendJSONString appends s as a JSON string. Job ids and kind names are
// plain ASCII, so the fast path copies them; anything else goes through
// encoding/json for exact escaping.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
