"""One poll cycle: read KEB as cheaply as can be proven correct, diff, and record.

Decides: which orchestrations a cycle polls, which requests prove an observation
(``observer``, ``incremental``) and how a cycle's results and errors are reported
(``cycle``); ``follow`` drives ``watch``'s loop over the same cycle.

Must not: write SQL (the store does), talk HTTP other than through the KEB client, render or
deliver notifications (it records intents; ``notify`` delivers them), or print.
"""
