"""Who may call: tokens (gateway and people's tokens, dashboard sessions, roles) and
registry (registered devices and their broker logins). A request -> api.deps -> tokens.
"""
