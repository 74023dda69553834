"""The pool of upstream accounts: selection, cooldowns, failover bookkeeping."""
