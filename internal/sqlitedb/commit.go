package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// maxGroup bounds how many writes share one transaction, so one commit
// cannot grow without limit under a flood.
const maxGroup = 256

// Committer groups concurrent writes into one transaction (group commit):
// while one commit waits for its fsync, the writes that arrive queue up and
// go out together in the next. It writes through one dedicated connection,
// so statements prepared for the database are prepared on it only once.
type Committer struct {
	db     *sql.DB
	writes chan *write
	wg     sync.WaitGroup
	once   sync.Once
}

type write struct {
	fn   func(*sql.Tx) error
	done chan error
}

// ErrCommitterClosed is returned by Do after Close.
var ErrCommitterClosed = errors.New("sqlitedb: committer closed")

// NewCommitter starts a committer writing to db.
func NewCommitter(db *sql.DB) *Committer {
	c := &Committer{db: db, writes: make(chan *write, maxGroup)}
	c.wg.Add(1)
	go c.loop()
	return c
}

// Do runs fn inside a transaction shared with concurrent callers and returns
// once that transaction is durable (nil) or failed. fn must only use tx, and
// may run more than once (when another write in its group fails).
func (c *Committer) Do(fn func(*sql.Tx) error) (err error) {
	w := &write{fn: fn, done: make(chan error, 1)}
	defer func() {
		// Sending on the closed channel after Close panics: report it instead.
		if recover() != nil {
			err = ErrCommitterClosed
		}
	}()
	c.writes <- w
	return <-w.done
}

// Close finishes the writes already submitted and stops.
func (c *Committer) Close() {
	c.once.Do(func() { close(c.writes) })
	c.wg.Wait()
}

func (c *Committer) loop() {
	defer c.wg.Done()
	var conn *sql.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for first := range c.writes {
		group := []*write{first}
	gather:
		for len(group) < maxGroup {
			select {
			case w, ok := <-c.writes:
				if !ok {
					break gather
				}
				group = append(group, w)
			default:
				break gather
			}
		}
		if conn == nil {
			var err error
			if conn, err = c.db.Conn(context.Background()); err != nil {
				for _, w := range group {
					w.done <- fmt.Errorf("connecting: %w", err)
				}
				continue
			}
		}
		c.commit(conn, group)
	}
}

// commit runs the group in one transaction and answers each write. When a
// write fails, the transaction is rolled back and the others are committed
// without it: failures are rare, so this is cheaper than a savepoint around
// every write.
func (c *Committer) commit(conn *sql.Conn, group []*write) {
	for len(group) > 0 {
		tx, err := conn.BeginTx(context.Background(), nil)
		if err != nil {
			answer(group, fmt.Errorf("beginning transaction: %w", err))
			return
		}
		failed := -1
		var failure error
		for i, w := range group {
			if failure = w.fn(tx); failure != nil {
				failed = i
				break
			}
		}
		if failed >= 0 {
			tx.Rollback()
			group[failed].done <- failure
			group = append(group[:failed:failed], group[failed+1:]...)
			continue
		}
		if err := tx.Commit(); err != nil {
			answer(group, fmt.Errorf("committing: %w", err))
			return
		}
		answer(group, nil)
		return
	}
}

func answer(group []*write, err error) {
	for _, w := range group {
		w.done <- err
	}
}
