"""What the firmware tools print: progress and errors on stderr, help text from docstrings."""

from __future__ import annotations

import inspect
from typing import NoReturn

import typer


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def unwrap(doc: str) -> str:
    """A docstring as help: paragraphs kept, line breaks inside them removed."""
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n"))


def say(message: str) -> None:
    typer.echo(message, err=True)


def show_progress(index: int, total: int, name: str) -> None:
    say(f"[{index:>{len(str(total))}}/{total}] {name}")
