"""Name -> factory registries: the project's extension points (SPEC §3).

Adding a backbone, face detector, dataset layout, sequence head or aggregation rule is one
file and one decorator. Nothing else in the code branches on those names.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """A named collection of factories with a listing and helpful unknown-name errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._prefixes: dict[str, Callable[[str], T]] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` above a factory."""

        def decorator(factory: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = factory
            return factory

        return decorator

    def register_prefix(self, prefix: str) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
        """Register a resolver for a family of names such as ``timm:<model>``.

        The resolver receives the part after the prefix and returns the factory.
        """

        def decorator(resolver: Callable[[str], T]) -> Callable[[str], T]:
            self._prefixes[prefix] = resolver
            return resolver

        return decorator

    def get(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        for prefix, resolver in self._prefixes.items():
            if name.startswith(prefix) and len(name) > len(prefix):
                return resolver(name[len(prefix) :])
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        families = [f"{p}<name>" for p in self._prefixes]
        known = ", ".join(sorted(self._entries) + families)
        raise UnknownNameError(f"unknown {self.kind} {name!r}.{hint} Known: {known}.")

    def names(self) -> list[str]:
        return sorted(self._entries)

    def prefixes(self) -> list[str]:
        return sorted(self._prefixes)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
