"""The faces of the product: one module or folder per command family and its output.

Decides: options, arguments, exit codes and what is printed (text, JSON, the live view,
the dashboard's pages). Every KEB string goes through ``core.inert`` before it is shown.

Must not: build clients, stores or engines (``app`` composes them), hold domain rules
(``core`` does), or write SQL.
"""
