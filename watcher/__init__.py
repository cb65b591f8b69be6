"""keb-watcher: follow Kyma Environment Broker orchestrations, record what KEB showed, notify.

The layers, top to bottom, are drawn in docs/architecture.md: ``cli``, ``faces``, ``app``,
``engine``, ``notify``, ``store``, ``keb``, ``config``, ``core``; ``sim`` stands apart.
"""

#: The one place the version is written: the wheel's metadata (pyproject's dynamic version),
#: the KEB client's User-Agent, `watcher --version` and /metrics' build_info read it here, so
#: nothing looks up package metadata at start-up.
__version__ = "0.1.0"
