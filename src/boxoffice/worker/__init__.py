"""Background jobs: the jobs table is the outbox; workers claim, run and retry its rows."""
