"""Argument types and shared options of the ``jaxvi`` command: each parses one option's text
or raises ``argparse.ArgumentTypeError`` with the reason.
"""

from __future__ import annotations

import argparse
import math

__all__ = [
    "Parser",
    "add_model_options",
    "csv_character",
    "positive_float",
    "positive_int",
    "size_pair",
]


def positive_int(text: str) -> int:
    """A count: ``100000``, ``100_000`` or ``1e5``."""
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not number.is_integer():
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
        value = int(number)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    from jaxvi._model.params import NEED, is_positive

    if not is_positive(value):
        raise argparse.ArgumentTypeError(f"{NEED}, got {text}")
    return value


def csv_character(text: str) -> str:
    """A CSV quote or delimiter as typed in a shell: ``;``, or ``\\t`` for a tab (the
    CSV dialect checks that it is one character)."""
    return "\t" if text == "\\t" else text


def size_pair(text: str) -> tuple[int, int]:
    """Dataset sizes: an inclusive range ``LOW:HIGH``, or a single size ``N`` (= ``N:N``)."""
    parts = text.split(":") if ":" in text else [text, text]
    try:
        low, high = (int(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LOW:HIGH or N, e.g. 1:64; got {text!r}"
        ) from None
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"need 0 <= LOW <= HIGH, got {text!r}")
    return low, high


class Parser(argparse.ArgumentParser):
    """Usage errors in one line on stderr (exit code 2), like every other input error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lam", type=positive_float, default=1.0, help="prior rate lambda > 0 (default: 1)"
    )
    parser.add_argument(
        "--sigma", type=positive_float, default=1.0, help="noise scale sigma > 0 (default: 1)"
    )
