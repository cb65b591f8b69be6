"""A simulator's HTTP server run in a thread of its own: started, stopped, used as a context
manager. Both simulators (orchestrations, ``server``; runtimes, ``fleet_server``) serve this
way."""

from __future__ import annotations

import threading
import time
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Self, TextIO


class Background:
    """Serves ``httpd`` in a daemon thread between :meth:`start` and :meth:`stop`."""

    def __init__(self, httpd: ThreadingHTTPServer) -> None:
        self._httpd = httpd
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{port}"

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"keb-sim {self.url}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.close_connections()
        self._httpd.server_close()

    def close_connections(self) -> None:
        """Drop the connections clients keep open (a server that tracks them says how)."""

    def serve_until_interrupted(self, out: TextIO) -> None:
        """Block until Ctrl-C (``watcher sim``), then say so on ``out``."""
        out.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped", file=out)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
