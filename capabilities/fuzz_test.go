package capabilities

import (
	"bytes"
	"testing"

	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/node/basicnode"
)

// FuzzReadCaveats decodes arbitrary DAG-CBOR as an invocation's caveats: the
// parser must accept only valid caveats and never panic. The committed corpus
// is in testdata/fuzz/FuzzReadCaveats.
func FuzzReadCaveats(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		nb := basicnode.Prototype.Any.NewBuilder()
		if err := dagcbor.Decode(nb, bytes.NewReader(data)); err != nil {
			return
		}
		c, err := ReadCaveats(nb.Build())
		if err != nil {
			return
		}
		if c.Resource == nil || c.Bytes <= 0 || c.ServedAt < 0 {
			t.Fatalf("accepted invalid caveats %+v", c)
		}
		if _, err := NewRecordOK("did:key:z6Mk", c, c.Resource).ToIPLD(); err != nil {
			t.Fatalf("valid caveats do not make a success value: %v", err)
		}
	})
}
