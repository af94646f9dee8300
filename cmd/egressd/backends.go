package main

import (
	egressdaws "github.com/egressd/egressd/aws"
	"github.com/egressd/egressd/backend"
	"github.com/egressd/egressd/embedded"
)

// backends chooses a backend by the scheme of a store's URL (--receipts,
// --queue, --tables); a store given no URL is kept in the data directory.
// A new backend is its package plus one line here.
var backends = backend.Registry{
	"":         embedded.OpenBackend,
	"s3":       egressdaws.Open,
	"sqs":      egressdaws.Open,
	"dynamodb": egressdaws.Open,
}
