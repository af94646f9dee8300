package sqlitedb

import (
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
// go out together in the next. Each write runs in its own savepoint, so one
// caller's failure does not undo another's.
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
// once that transaction is durable (nil) or failed. fn must only use tx.
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
		errs := c.commit(group)
		for i, w := range group {
			w.done <- errs[i]
		}
	}
}

// commit runs the group in one transaction and returns each write's outcome.
func (c *Committer) commit(group []*write) []error {
	errs := make([]error, len(group))
	fail := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	tx, err := c.db.Begin()
	if err != nil {
		return fail(fmt.Errorf("beginning transaction: %w", err))
	}
	for i, w := range group {
		if _, err := tx.Exec("SAVEPOINT write"); err != nil {
			tx.Rollback()
			return fail(fmt.Errorf("savepoint: %w", err))
		}
		if errs[i] = w.fn(tx); errs[i] != nil {
			if _, err := tx.Exec("ROLLBACK TO write"); err != nil {
				tx.Rollback()
				return fail(fmt.Errorf("rolling back a failed write: %w", err))
			}
		}
		if _, err := tx.Exec("RELEASE write"); err != nil {
			tx.Rollback()
			return fail(fmt.Errorf("releasing savepoint: %w", err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(fmt.Errorf("committing: %w", err))
	}
	return errs
}
