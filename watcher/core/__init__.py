"""Pure values and decisions: what KEB's JSON means, what changed, and what to say about it.

Decides: parsing KEB's answers into records (``models``), the transitions between two
snapshots (``diff``), which notifications they give (``policy``, ``failures``, ``standing``),
how often to poll (``pace``, ``cadence``), the ``watch`` state machine (``watching``), and the
words, orders and labels every face shows (``wording``, ``states``, ``inert``, ``durations``).

Must not: do I/O, read a clock (``now`` is always an argument), or import any other layer
but :mod:`watcher.errors`. Every function here can be tested with plain values.
"""
