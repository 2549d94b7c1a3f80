// Package outbox keeps requests that the sidecar accepted (answering 202)
// while the Ops-Core core was down, and delivers them later, in order,
// when the core is back.
//
// # Stores
//
// A Store is a durable FIFO queue of Messages plus a dead-letter list.
// Two implementations:
//
//   - BoltStore (bolt.go, OpenBolt): one bbolt file for one sidecar
//     process; a second process opening the same file fails after one
//     second with an error naming the file. IDs are zero-padded 20-digit
//     sequence numbers. The depth, byte count and per-agent index are kept
//     in memory, rebuilt when the file is opened, so Pending is O(1).
//   - RedisStore (redis.go, OpenRedis): a Redis stream read through a
//     consumer group, shared by several sidecar replicas. IDs are stream
//     entry ids. Enqueue, Ack, DeadLetter and RetryDead are each one Lua
//     script, so the byte counter and the agent index ("<stream>:agents")
//     move with the stream in one step.
//
// # What is durable when
//
// Enqueue returns only after the message is stored: for bolt, after the
// transaction is committed and fsynced (a crash or SIGKILL after Enqueue
// returns loses nothing; see TestBoltCrashKeepsEveryAcknowledgedMessage in
// bolt_test.go); for Redis, after the server answered the script, which
// is as durable as that server's persistence (appendonly with fsync everysec loses up to a
// second on a power cut; no persistence loses everything on restart).
// Release, Ack, DeadLetter and RetryDead are just as durable.
//
// # Order
//
// Messages are delivered one at a time, oldest first. A message that
// fails with a retryable outcome stays at the head (Release) and is sent
// again after a backoff: it blocks the queue, so the order of messages
// of one agent, and of all agents, is the enqueue order. A message moved
// back from the dead-letter list (RetryDead) goes to the tail with a new
// ID.
//
// With Redis, only the replica holding the delivery lease (the key
// "<stream>:lease", see RedisOptions.Lease) claims messages; it renews
// the lease while a claimed message is out. When it dies, the lease
// expires and the next replica to Claim takes it, first claims
// (XAUTOCLAIM) the entries left pending by the dead one, oldest first,
// and only then reads new ones, so order holds across replicas. The lease
// is renewed every Lease/3 from Claim until Ack, Release or DeadLetter, or
// until the context given to Claim ends (a stopped Deliverer stops
// renewing). A replica that holds the lease while idle keeps it as long as
// it polls, so a message enqueued through another replica waits at most
// one DelivererOptions.Poll of the holder; after the holder dies the next
// replica delivers within Lease plus its own Poll.
//
// # Delivery guarantee
//
// Delivery is at least once. A message is removed (Ack) only after the
// upstream answered 2xx or 3xx; if the process dies, or its lease runs
// out, between the send and the Ack, the message is sent again. The
// upstream should therefore treat a replay (same RequestID) as a
// duplicate. In the normal case each message is sent once.
//
// # Deliverer
//
// A Deliverer (deliverer.go) runs the loop: Claim, send, then Ack on
// 2xx/3xx, DeadLetter on 4xx other than 408, 425 and 429 (reason
// "upstream answered <code>"), and Release plus an exponential backoff
// with jitter otherwise. It waits for Kick or DelivererOptions.Poll when
// the queue is empty or DelivererOptions.Ready reports the upstream down.
// Kick does not cut a backoff short. There is no cap on attempts: a
// message that keeps failing with 5xx blocks the queue until it succeeds
// or is dead-lettered by a 4xx (order per agent is kept over progress);
// there is no API to drop a queued message, so a core that refuses one
// message with 5xx for good needs fixing, and the SidecarOutboxBacklogOld
// alert says so (docs/deploy.md).
//
// # Limits and sizes
//
// Limits bound the queue (not the dead letters) in messages and in bytes,
// where a message counts Message.Size (body, path, headers and the other
// strings; not the JSON encoding). Enqueue and RetryDead past a limit
// return ErrFull and store nothing.
//
// Messages that cannot be decoded are never dropped: they move to the
// dead-letter list with their raw bytes as Body and the decode error as
// DeadReason.
package outbox
