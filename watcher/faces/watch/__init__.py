"""``watcher watch``: follow orchestrations in the terminal until they end.

``command`` holds the options, hooks and exit code, ``live`` the plain lines, JSON lines and
live view, ``board`` the several-IDs board. The state machine itself is
:mod:`watcher.core.watching`; the loop that polls is :mod:`watcher.engine.follow`.
"""
