"""The web dashboard of ``watcher run`` and ``watcher demo --web``: pages and JSON.

* :mod:`watcher.faces.web.routes`: the routes, authentication, security headers;
* :mod:`watcher.faces.web.views`: view models (every KEB string through ``views.shown``);
* ``templates/``: the Jinja2 pages (rendered by :mod:`watcher.notify.pages`, autoescaped);
* ``static/``: the stylesheet and the one small script (live updates, copy buttons).

See docs/dashboard.md.
"""
