"""The only SQLite user: snapshots, transitions, the outbox, the lease and retention.

Decides: how records map to rows and back, in which transaction what is written (a
snapshot, its transitions and its notifications always in one), and the schema's
migrations. Every sqlite3 error leaves it as a :class:`watcher.errors.StoreError`.

Must not: decide what a change means or what to notify (``core`` does), reach KEB or Slack,
or let any other layer touch its connection.
"""
