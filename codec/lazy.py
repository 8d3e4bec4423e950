"""Modules loaded on first use: torch stays out of a process where no tensor runs (`info`, a
decode whose stream names no network)."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")


class LazyModule(ModuleType):
    """Stands for the module ``name`` and imports it the first time an attribute is read."""

    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__name__)
        return getattr(module, attr)


def lazy_module(name: str) -> Any:
    """``name`` imported on first use (``torch = lazy_module("torch")``)."""
    return LazyModule(name)


def no_grad(function: Callable[..., T]) -> Callable[..., T]:
    """``torch.no_grad()`` as a decorator that imports torch only when ``function`` runs."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> T:
        import torch

        with torch.no_grad():
            return function(*args, **kwargs)

    return run
