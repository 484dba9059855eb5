"""``netbpf tcp``: retransmits, resets, state changes and connection lifetimes."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pass
