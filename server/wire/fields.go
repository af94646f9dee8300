package wire

import "errors"

// TopLevelField returns the encoded value of key in the top-level map of a
// block CheckBlock accepted, and whether the key is there. It reads the
// block's heads only, without building nodes.
func TopLevelField(block []byte, key string) ([]byte, bool, error) {
	c := checker{data: block}
	major, n, err := c.head()
	if err != nil || major != 5 {
		return nil, false, errors.New("block is not a map")
	}
	for range n {
		kmajor, klen, err := c.head()
		if err != nil || kmajor != 3 || uint64(len(c.data)-c.pos) < klen {
			return nil, false, errors.New("map key is not a string")
		}
		k := string(c.data[c.pos : c.pos+int(klen)])
		c.pos += int(klen)
		start := c.pos
		if err := c.skip(); err != nil {
			return nil, false, err
		}
		if k == key {
			return c.data[start:c.pos], true, nil
		}
	}
	return nil, false, nil
}

// skip moves past one item and everything inside it. The blocks it reads
// passed CheckBlock, so their nesting is bounded; it keeps its own count
// of items still to skip rather than recursing.
func (c *checker) skip() error {
	for left := uint64(1); left > 0; left-- {
		major, arg, err := c.head()
		if err != nil {
			return err
		}
		switch major {
		case 2, 3:
			if uint64(len(c.data)-c.pos) < arg {
				return errors.New("truncated")
			}
			c.pos += int(arg)
		case 4:
			left += arg
		case 5:
			left += 2 * arg
		case 6:
			left++
		}
	}
	return nil
}
