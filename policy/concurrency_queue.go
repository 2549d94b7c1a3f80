package policy

// gateWaiter is one request waiting in a ConcurrencyGate. The gate sends
// exactly one result on result (buffered, so the sender never blocks):
// ReasonNone when a slot was handed over, ReasonShed when the waiter was
// evicted. queued is true while the waiter is in a queue; both are guarded
// by the gate's mutex.
type gateWaiter struct {
	result     chan AdmissionReason
	queued     bool
	prev, next *gateWaiter
}

// waitQueue is an intrusive FIFO list of waiters: O(1) push, pop at both
// ends and removal of a waiter that timed out.
type waitQueue struct {
	head, tail *gateWaiter
	n          int
}

func (q *waitQueue) pushBack(w *gateWaiter) {
	w.prev, w.next, w.queued = q.tail, nil, true
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	q.n++
}

func (q *waitQueue) popFront() *gateWaiter {
	w := q.head
	q.remove(w)
	return w
}

func (q *waitQueue) popBack() *gateWaiter {
	w := q.tail
	q.remove(w)
	return w
}

func (q *waitQueue) remove(w *gateWaiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	q.n--
}
