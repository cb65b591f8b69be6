"""``watcher run``: the long-running service.

``command`` is the command, ``service`` the scheduled jobs (poll, deliver, retention) and
their shutdown, ``schedule`` the trigger, ``health`` and ``metrics`` its HTTP surface.
What a cycle does is composed in :mod:`watcher.app`; this package only schedules it.
"""
