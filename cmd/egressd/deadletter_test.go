package main_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/egressd/egressd/billing"
	billingsqs "github.com/egressd/egressd/billing/sqs"
	"github.com/egressd/egressd/embedded"
	"github.com/egressd/egressd/internal/awsconfig"
	"github.com/egressd/egressd/internal/awstest"
	"github.com/egressd/egressd/internal/sqlitedb"
)

type deadLettersJSON struct {
	Count       int                  `json:"count"`
	DeadLetters []billing.DeadLetter `json:"deadLetters"`
	Requeued    int                  `json:"requeued"`
}

func deadLetters(t *testing.T, env []string, args ...string) deadLettersJSON {
	t.Helper()
	out := runEnv(t, env, append([]string{"billing", "dead-letters", "--json"}, args...)...)
	var rep deadLettersJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("billing dead-letters --json printed %q: %v", out, err)
	}
	return rep
}

func deadEvent(cause string) billing.Event {
	return billing.Event{Space: "did:key:z6MkSpace", Customer: "did:mailto:example.com:dead", Resource: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
		Bytes: 42, ServedAt: time.Unix(1767225600, 0).UTC(), Cause: cause}
}

// TestDeadLettersEmbedded: an operator lists the embedded queue's dead
// letters, requeues one by ID and then the rest; the table names each.
func TestDeadLettersEmbedded(t *testing.T) {
	data := t.TempDir()
	db, err := embedded.Open(context.Background(), data, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	journal, err := sqlitedb.Open(filepath.Join(data, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	for i, cause := range []string{"bafy-dead-1", "bafy-dead-2"} {
		body, _ := json.Marshal(deadEvent(cause))
		if _, err := journal.Exec(`INSERT INTO dead_letter (id, body, receives, enqueued_at, dead_at) VALUES (?, ?, 10, 0, ?)`, i+1, body, i); err != nil {
			t.Fatal(err)
		}
	}
	journal.Close()

	rep := deadLetters(t, nil, "--data-dir", data)
	if rep.Count != 2 || len(rep.DeadLetters) != 2 || rep.DeadLetters[0].Event == nil || *rep.DeadLetters[0].Event != deadEvent("bafy-dead-1") {
		t.Fatalf("dead-letters = %+v, want both events, the first set aside first", rep)
	}
	table := run(t, "billing", "dead-letters", "--data-dir", data)
	if !strings.Contains(table, "2 dead letters") || !strings.Contains(table, "bafy-dead-2") {
		t.Fatalf("dead-letters table:\n%s", table)
	}
	rep = deadLetters(t, nil, "--data-dir", data, "--id", rep.DeadLetters[0].ID)
	if rep.Requeued != 1 || rep.Count != 1 || rep.DeadLetters[0].Event.Cause != "bafy-dead-2" {
		t.Fatalf("dead-letters --id = %+v, want the first requeued and the second left", rep)
	}
	rep = deadLetters(t, nil, "--data-dir", data, "--requeue")
	if rep.Requeued != 1 || rep.Count != 0 || len(rep.DeadLetters) != 0 {
		t.Fatalf("dead-letters --requeue = %+v, want the last one requeued", rep)
	}
	if u := usage(t, data); u.Queue.Depth != 2 {
		t.Fatalf("after requeueing: usage queue %+v, want 2 waiting", u.Queue)
	}
	if stderr := runFails(t, "billing", "dead-letters", "--data-dir", data, "--requeue", "--id", "1"); !strings.Contains(stderr, "--id") {
		t.Fatalf("--requeue with --id: %s", stderr)
	}
	missing := filepath.Join(data, "missing")
	if stderr := runFails(t, "billing", "dead-letters", "--data-dir", missing); !strings.Contains(stderr, "no data directory") {
		t.Fatalf("dead-letters on a missing data directory: %s", stderr)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("dead-letters created the missing data directory")
	}
}

// TestDeadLettersSQS: the same on SQS, through the dead-letter queue that
// `aws init` set up.
func TestDeadLettersSQS(t *testing.T) {
	env := awsEnv(t)
	name := awstest.Name("dl-events")
	queue := "sqs://" + name
	runEnv(t, env, "aws", "init", "--queue", queue)

	ctx := context.Background()
	client := awsconfig.NewSQS(awstest.Config(t))
	dlq, err := client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(name + "-dlq")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(deadEvent("bafy-dead-sqs"))
	for _, b := range []string{string(body), "not an event"} {
		if _, err := client.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: dlq.QueueUrl, MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}

	rep := deadLetters(t, env, "--queue", queue)
	if rep.Count != 2 || len(rep.DeadLetters) != 2 {
		t.Fatalf("dead-letters = %+v, want 2", rep)
	}
	rep = deadLetters(t, env, "--queue", queue, "--requeue")
	if rep.Requeued != 2 || rep.Count != 0 {
		t.Fatalf("dead-letters --requeue = %+v, want both requeued", rep)
	}
	q, err := billingsqs.Open(ctx, client, name, billingsqs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if n, err := q.Depth(ctx); err != nil || n != 2 {
		t.Fatalf("after requeueing: queue depth %d, %v; want 2", n, err)
	}
}
