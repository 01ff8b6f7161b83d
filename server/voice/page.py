"""The phone page: its HTML (no script, one stylesheet of ours) and the form it posts,
judged before anything is stored. Pure: no I/O."""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import parse_qsl

from server.models.voice import COMMENT_CHARS, CONTACT_CHARS

MAX_BODY = 16 * 1024  # 1000 characters of 4 UTF-8 bytes, percent-encoded, fit in 12 KiB
# Only ours, only a form to this server. The URL holds the code, so no referrer leaves
# for another site; "same-origin", not "no-referrer": with that, Chromium sends
# `Origin: null` on the form's POST, which the CSRF check (api/origin.py) refuses.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none';"
        " base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
}
CONSENT = (
    "Optional. If you would like the team at this site to get back to you about this,"
    " leave a phone number or an e-mail address. It is used only for that, and only"
    " that team sees it."
)
# Line breaks and tabs are text; every other control character (NUL included) is not.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class BadForm(ValueError):
    """What the form sent cannot be stored: `status` (400 or 422) and why, for the person."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Submission:
    comment: str
    contact: str | None


def _field(fields: dict[str, str], name: str, limit: int) -> str:
    value = unicodedata.normalize("NFC", fields.get(name, "").replace("\r\n", "\n")).strip()
    if CONTROL.search(value):
        raise BadForm(422, "invalid", f"the {name} holds control characters (NUL or similar)")
    if len(value) > limit:
        raise BadForm(422, "too_large", f"the {name} is {len(value)} characters; at most {limit}")
    return value


def parse_form(body: bytes) -> Submission:
    """The comment and contact of an `application/x-www-form-urlencoded` body."""
    if len(body) > MAX_BODY:
        raise BadForm(413, "too_large", f"the form is larger than {MAX_BODY} bytes")
    try:
        pairs = parse_qsl(body.decode("ascii"), encoding="utf-8", errors="strict",
                          max_num_fields=8)  # fmt: skip
    except (UnicodeError, ValueError) as err:  # not ASCII, not UTF-8 (lone surrogates), too many
        why = f"the form could not be read ({type(err).__name__})"
        raise BadForm(400, "invalid", why) from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise BadForm(400, "invalid", f"the field {name[:20]!r} was sent twice")
        fields[name] = value
    comment = _field(fields, "comment", COMMENT_CHARS)
    if not comment:
        raise BadForm(422, "invalid", "the comment is empty")
    contact = _field(fields, "contact", CONTACT_CHARS)
    return Submission(comment=comment, contact=contact or None)


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="/ui/voice.css"></head>
<body><main>
<h1>{html.escape(title)}</h1>
{body}
</main></body></html>
"""


def form_page(action: str, error: str | None = None, comment: str = "") -> str:
    shown_error = f'<p class="error" role="alert">{html.escape(error)}</p>\n' if error else ""
    return _page(
        "Tell us more",
        f"""<p>Thank you for your answer. What should we know? Your words go to the team
that runs this place.</p>
{shown_error}<form method="post" action="{html.escape(action)}">
<label for="comment">Your comment</label>
<textarea id="comment" name="comment" rows="6" maxlength="{COMMENT_CHARS}" required>{
            html.escape(comment)
        }</textarea>
<label for="contact">A way to reach you</label>
<input id="contact" name="contact" type="text" maxlength="{CONTACT_CHARS}"
 autocomplete="email" aria-describedby="consent">
<p id="consent" class="hint">{html.escape(CONSENT)}</p>
<button type="submit">Send</button>
</form>""",
    )


def message_page(title: str, text: str) -> str:
    return _page(title, f"<p>{html.escape(text)}</p>")
