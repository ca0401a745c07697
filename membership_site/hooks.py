"""Explicit extension points between apps.

A lower app declares a ``Hook``; a higher app registers a function with it in its
``AppConfig.ready``. The lower app runs the hook inside its own service's transaction, so
what the higher app does commits or rolls back with it. Unlike Django signals, hooks are
declared where they are run, take keyword arguments only, and let exceptions through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Hook:
    def __init__(self, name: str, doc: str = "") -> None:
        self.name = name
        self.__doc__ = doc
        self._receivers: list[Callable[..., Any]] = []

    def register(self, receiver: Callable[..., Any]) -> Callable[..., Any]:
        if receiver not in self._receivers:
            self._receivers.append(receiver)
        return receiver

    def run(self, **kwargs: Any) -> list[Any]:
        return [receiver(**kwargs) for receiver in self._receivers]

    def __repr__(self) -> str:
        return f"<Hook {self.name} ({len(self._receivers)} receivers)>"
