package backend

import "sync"

// Once opens a store the first time it is asked for and returns the same
// store afterwards; a failed open is tried again on the next call, so a
// backend that was not ready at start-up can be retried by its caller.
type Once[T any] struct {
	mu    sync.Mutex
	done  bool
	value T
}

// Get returns the store, opening it with open on the first successful call.
func (o *Once[T]) Get(open func() (T, error)) (T, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done {
		return o.value, nil
	}
	v, err := open()
	if err != nil {
		return v, err
	}
	o.value, o.done = v, true
	return v, nil
}

// Opened reports the store if it was opened.
func (o *Once[T]) Opened() (T, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.value, o.done
}
