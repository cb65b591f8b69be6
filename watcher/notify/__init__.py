"""Notifications: rendering (Jinja2 -> Block Kit), the outbox sender and Slack delivery.

Decides: how an intent becomes a message within Slack's limits (blocks, sections, rate),
in what order pending notifications go out, and what a delivery attempt's answer means.
The only user of slack-sdk and Jinja2.

Must not: decide what is worth notifying (``core.policy`` does), poll KEB, or write SQL
(it reads and marks the outbox through ``store``).
"""
