package bench

import (
	"net/http"
	"time"
)

// transport keeps one idle connection per client, so the run measures
// requests, not TCP handshakes.
func transport(concurrency int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = concurrency * 2
	t.MaxIdleConnsPerHost = concurrency * 2
	t.IdleConnTimeout = 90 * time.Second
	return t
}
