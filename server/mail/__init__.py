"""E-mail: `messages` writes them (pure), `smtp` sends one (stdlib smtplib), `outbox`
sends in the background so that no request waits on a mail server."""
