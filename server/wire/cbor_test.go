package wire

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/node/basicnode"
)

// roundTrips is the reference CheckBlock must never contradict: a block it
// accepts decodes with go-ipld-prime and encodes back to the same bytes.
func roundTrips(data []byte) bool {
	nb := basicnode.Prototype.Any.NewBuilder()
	if err := dagcbor.Decode(nb, bytes.NewReader(data)); err != nil {
		return false
	}
	var out bytes.Buffer
	if err := dagcbor.Encode(nb.Build(), &out); err != nil {
		return false
	}
	return bytes.Equal(out.Bytes(), data)
}

func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// nested is n lists, one inside the other: the stack-overflow attack.
func nested(n int) []byte {
	return append(bytes.Repeat([]byte{0x81}, n), 0x01)
}

func TestCheckBlock(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"small int", h("05"), true},
		{"int in one extra byte", h("1805"), false},
		{"int 24 in one byte", h("1818"), true},
		{"int widened to 2 bytes", h("190018"), false},
		{"int widened to 8 bytes", h("1b0000000000000005"), false},
		{"negative", h("20"), true},
		{"uint past int64", h("1bffffffffffffffff"), false},
		{"text", h("63616263"), true},
		{"text length widened", h("7803616263"), false},
		{"invalid UTF-8", h("62c328"), false},
		{"bytes", h("43010203"), true},
		{"indefinite list", h("9f01ff"), false},
		{"map sorted", h("a2 6161 01 626262 02"), true},
		{"map keys by length first", h("a2 626262 02 6161 01"), false},
		{"map repeated key", h("a2 6161 01 6161 02"), false},
		{"map int key", h("a1 01 02"), false},
		{`map "/" key`, h("a1 612f 01"), false},
		{"float64 fraction", h("fb3ff8000000000000"), true},
		{"float64 integral", h("fb4014000000000000"), false},
		{"float32", h("fa3fc00000"), false},
		{"float16", h("f93e00"), false},
		{"NaN", h("fb7ff8000000000000"), false},
		{"true false null", h("83 f5 f4 f6"), true},
		{"undefined", h("f7"), false},
		{"tag other than 42", h("c1 01"), false},
		{"trailing bytes", h("01 01"), false},
		{"truncated", h("63 6162"), false},
		{"list longer than data", h("9b00000000ffffffff 01"), false},
		{"empty list", h("80"), true},
		{"list of empty lists", h("82 80 80"), true},
		{"deep within limit", nested(32), true},
		{"one too deep", nested(33), false},
		{"very deep", nested(3_000_000), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckBlock(c.data, 32)
			if (err == nil) != c.ok {
				t.Fatalf("CheckBlock = %v, want ok=%v", err, c.ok)
			}
			if err == nil && !roundTrips(c.data) {
				t.Fatalf("accepted a block that does not round-trip")
			}
		})
	}
}

// FuzzCheckBlock holds CheckBlock to the round-trip reference on any input,
// and to finishing without a crash on inputs nested far past any limit.
func FuzzCheckBlock(f *testing.F) {
	for _, seed := range [][]byte{
		h("a2 6161 01 626262 02"), h("1805"), h("9f01ff"), h("fb3ff8000000000000"),
		h("d82a 5825 0001711220" + strings.Repeat("00", 32)),
		nested(100), nested(1_000_000),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if CheckBlock(data, 32) == nil && !roundTrips(data) {
			t.Fatalf("accepted %x, which does not round-trip", data)
		}
	})
}

func TestTopLevelField(t *testing.T) {
	// {"a": [1, [2, {"x": h'00'}]], "bb": "c", "fct": []}
	block := h("a3 6161 82 01 82 02 a1 6178 4100 626262 6163 63666374 80")
	if err := CheckBlock(block, 32); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"a": "820182 02a1617841 00", "bb": "6163", "fct": "80"} {
		got, ok, err := TopLevelField(block, key)
		if err != nil || !ok || hex.EncodeToString(got) != strings.ReplaceAll(want, " ", "") {
			t.Errorf("%s = %x, %v, %v; want %s", key, got, ok, err, want)
		}
	}
	if _, ok, err := TopLevelField(block, "missing"); ok || err != nil {
		t.Errorf("missing key found: %v %v", ok, err)
	}
}
