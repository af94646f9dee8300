package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
)

// CheckBlock reports whether data is the one canonical DAG-CBOR encoding of
// its value, with nothing nested deeper than maxDepth, and free of the
// values whose DAG-JSON form (what a UCAN signature covers) they share with
// another value. It reads data once, allocates nothing and recurses
// nowhere, so it is safe to run on hostile bytes before any decoder.
//
// Canonical DAG-CBOR: integers and lengths in their shortest form, definite
// lengths only, map keys that are strings sorted by length and then bytes
// with no repeats, floats only as 64 bits, tag 42 (a CID) as the only tag,
// and false, true and null as the only simple values. Beyond it:
//   - text must be valid UTF-8 (JSON would turn bad bytes into U+FFFD);
//   - no map may have the key "/" (DAG-JSON reserves it for links and bytes);
//   - no float may be integral, infinite or NaN (DAG-JSON writes 5.0 as 5).
func CheckBlock(data []byte, maxDepth int) error {
	c := checker{data: data, maxDepth: maxDepth}
	if err := c.run(); err != nil {
		return err
	}
	return nil
}

// frame is a list or map being read: how many items are left in it and,
// for a map, the last key read (to check the order).
type frame struct {
	left    uint64
	isMap   bool
	lastKey []byte
	hasKey  bool
}

type checker struct {
	data     []byte
	pos      int
	maxDepth int
	stack    []frame
}

func (c *checker) fail(format string, args ...any) error {
	return &NonCanonicalError{Offset: c.pos, Reason: fmt.Sprintf(format, args...)}
}

// NonCanonicalError says where and why a block is not canonical.
type NonCanonicalError struct {
	Offset int
	Reason string
}

func (e *NonCanonicalError) Error() string {
	return fmt.Sprintf("not canonical DAG-CBOR at byte %d: %s", e.Offset, e.Reason)
}

// head reads an item's first byte and argument, insisting on the shortest form.
func (c *checker) head() (major byte, arg uint64, err error) {
	if c.pos >= len(c.data) {
		return 0, 0, c.fail("truncated")
	}
	b := c.data[c.pos]
	major, info := b>>5, b&0x1f
	start := c.pos
	c.pos++
	var size int
	switch {
	case info < 24:
		return major, uint64(info), nil
	case info == 24:
		size = 1
	case info == 25:
		size = 2
	case info == 26:
		size = 4
	case info == 27:
		size = 8
	case info == 31:
		c.pos = start
		return 0, 0, c.fail("indefinite length")
	default:
		c.pos = start
		return 0, 0, c.fail("reserved additional information %d", info)
	}
	if len(c.data)-c.pos < size {
		return 0, 0, c.fail("truncated")
	}
	raw := c.data[c.pos : c.pos+size]
	c.pos += size
	switch size {
	case 1:
		arg = uint64(raw[0])
	case 2:
		arg = uint64(binary.BigEndian.Uint16(raw))
	case 4:
		arg = uint64(binary.BigEndian.Uint32(raw))
	case 8:
		arg = binary.BigEndian.Uint64(raw)
	}
	// Floats (major 7) carry their bits, not a number to shorten.
	if major == 7 {
		return major, arg, nil
	}
	if arg < shortest(size) {
		c.pos = start
		return 0, 0, c.fail("number %d not in its shortest form", arg)
	}
	return major, arg, nil
}

// shortest is the smallest argument that needs size bytes.
func shortest(size int) uint64 {
	switch size {
	case 1:
		return 24
	case 2:
		return 1 << 8
	case 4:
		return 1 << 16
	}
	return 1 << 32
}

// length bounds a declared length by what is left to read, so that a
// claimed size never turns into an allocation.
func (c *checker) length(n uint64, minBytesEach uint64) error {
	left := uint64(len(c.data) - c.pos)
	if minBytesEach > 0 && n > left/minBytesEach {
		return c.fail("declares %d items, only %d bytes follow", n, left)
	}
	return nil
}

func (c *checker) run() error {
	for {
		// Is the next item a map key?
		key := false
		if n := len(c.stack); n > 0 {
			top := &c.stack[n-1]
			key = top.isMap && top.left%2 == 0
		}
		itemStart := c.pos
		major, arg, err := c.head()
		if err != nil {
			return err
		}
		if key && major != 3 {
			c.pos = itemStart
			return c.fail("map key is not a string")
		}
		switch major {
		case 0:
			if arg > math.MaxInt64 {
				return c.fail("integer beyond the 64-bit signed range")
			}
		case 1:
			if arg > math.MaxInt64 {
				return c.fail("integer beyond the 64-bit signed range")
			}
		case 2, 3:
			if err := c.length(arg, 1); err != nil {
				return err
			}
			s := c.data[c.pos : c.pos+int(arg)]
			c.pos += int(arg)
			if major == 3 && !utf8.Valid(s) {
				return c.fail("text is not valid UTF-8")
			}
			if key {
				if err := c.checkKey(s); err != nil {
					return err
				}
			}
		case 4, 5:
			per := uint64(1)
			if major == 5 {
				per = 2
			}
			if err := c.length(arg, per); err != nil {
				return err
			}
			if arg == 0 {
				break // empty: one item like any scalar
			}
			if len(c.stack) >= c.maxDepth {
				return c.fail("nested deeper than %d", c.maxDepth)
			}
			// The container counts against its parent once it closes.
			c.stack = append(c.stack, frame{left: arg * per, isMap: major == 5})
			continue
		case 6:
			if arg != 42 {
				return c.fail("tag %d (only 42, a CID, is allowed)", arg)
			}
			if err := c.link(); err != nil {
				return err
			}
		case 7:
			if err := c.simple(c.data[itemStart]&0x1f, arg); err != nil {
				c.pos = itemStart
				return err
			}
		}
		c.finishItem()
		if len(c.stack) == 0 {
			return c.end()
		}
	}
}

// checkKey insists on DAG-CBOR's key order (shorter first, then bytewise)
// with no key repeated, and refuses DAG-JSON's reserved key.
func (c *checker) checkKey(k []byte) error {
	top := &c.stack[len(c.stack)-1]
	if len(k) == 1 && k[0] == '/' {
		return c.fail(`map key "/" (reserved by DAG-JSON)`)
	}
	if top.hasKey {
		prev := top.lastKey
		if len(k) < len(prev) || (len(k) == len(prev) && bytes.Compare(k, prev) <= 0) {
			return c.fail("map keys out of order or repeated")
		}
	}
	top.lastKey, top.hasKey = k, true
	return nil
}

// link reads the byte string under tag 42: a zero byte, then a CID whose
// binary form is itself canonical.
func (c *checker) link() error {
	major, n, err := c.head()
	if err != nil {
		return err
	}
	if major != 2 {
		return c.fail("tag 42 must hold bytes")
	}
	if err := c.length(n, 1); err != nil {
		return err
	}
	b := c.data[c.pos : c.pos+int(n)]
	c.pos += int(n)
	if len(b) < 2 || b[0] != 0 {
		return c.fail("a CID in tag 42 must start with a zero byte")
	}
	read, id, err := cid.CidFromBytes(b[1:])
	if err != nil || read != len(b)-1 {
		return c.fail("tag 42 does not hold exactly one CID")
	}
	if !bytes.Equal(id.Bytes(), b[1:]) {
		return c.fail("CID not in its canonical binary form")
	}
	return nil
}

// simple accepts false, true, null and finite non-integral 64-bit floats.
func (c *checker) simple(info byte, arg uint64) error {
	switch info {
	case 20, 21, 22:
		return nil
	case 27:
		f := math.Float64frombits(arg)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return c.fail("float is NaN or infinite")
		}
		if f == math.Trunc(f) {
			return c.fail("integral float (it reads as an integer once signed)")
		}
		return nil
	case 25, 26:
		return c.fail("float shorter than 64 bits")
	}
	return c.fail("simple value %d", info)
}

// finishItem counts one item read against the list or map holding it and
// closes every container that it completes.
func (c *checker) finishItem() {
	for n := len(c.stack); n > 0; n = len(c.stack) {
		top := &c.stack[n-1]
		top.left--
		if top.left > 0 {
			return
		}
		// The container is complete: it is itself one item of its parent.
		c.stack = c.stack[:n-1]
	}
}

func (c *checker) end() error {
	if c.pos != len(c.data) {
		return c.fail("%d bytes after the value", len(c.data)-c.pos)
	}
	return nil
}
