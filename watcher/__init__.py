"""keb-watcher."""
