"""The fleet (issue 14): signed commands, desired vs reported config, releases, staged
rollouts and their NPS canary. `keys` and `commands` are pure; the rest reads and writes
the database through the session it is given."""
