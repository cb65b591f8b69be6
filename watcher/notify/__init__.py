"""Notifications: rendering (Jinja2 -> Block Kit), the outbox sender and Slack delivery."""
