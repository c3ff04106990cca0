"""`synack chat` sub-commands."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("chat", help="chat (not written yet)")
    p.set_defaults(func=lambda args: 1)
