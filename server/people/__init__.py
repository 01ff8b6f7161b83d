"""People: accounts (e-mail and an argon2id password), invitations and password resets
by one-time e-mail links, roles and optional site on a token row of their own.

`passwords` hashes and checks (pure), `accounts` stores (keyword-only CRUD),
`cli` is `nps-edge user`. Errors: `PersonError` (a `ValueError`) is the base of
`BadEmail`, `BadPassword`, `Taken`, `UnknownPerson` and `BadLink`.
"""
