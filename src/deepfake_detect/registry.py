"""Name -> factory registries: the project's extension points (SPEC §3).

Adding a backbone, face detector, dataset layout, sequence head or aggregation rule is one
file and one decorator. Nothing else in the code branches on those names. A registered class learns its
name from the decorator (its ``name`` attribute); its options are its constructor's keyword parameters,
whose defaults are written there only (:meth:`Registry.options`, :meth:`Registry.check_options`).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ExtensionImportError(ImportError):
    """A module of a registry's extension package failed to import; the message names the module (the
    original error is its ``__cause__``). Raised on every lookup until the module imports."""


class UnknownOptionError(ValueError):
    """Raised for an option that a registered entry's constructor does not take; the message lists
    the options it takes."""


def keyword_defaults(factory: Callable[..., Any]) -> dict[str, Any]:
    """The keyword parameters of ``factory`` (a class: its constructor) with their defaults, in order
    (``inspect.Parameter.empty`` for one without a default). ``**kwargs`` and ``*args`` are left out."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = inspect.signature(factory).parameters.values()
    return {p.name: p.default for p in params if p.kind in kinds}


class Registry(Generic[T]):
    """A named collection of factories with a listing and helpful unknown-name errors."""

    def __init__(self, kind: str, *, package: str | None = None) -> None:
        """``package``: an extension package whose every module is imported on the first lookup, so that
        a module there registers its entries without an import line anywhere else (a module that fails to
        import fails every lookup, naming it: see :meth:`_load`)."""
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._prefixes: dict[str, Callable[[str], T]] = {}
        self._package = package
        self._loading = False

    def _load(self) -> None:
        """Import every module of the extension package (not named ``_x``), once.

        The registry counts as loaded only when every module has imported: a module that fails raises
        :class:`ExtensionImportError` naming it, here and on every later lookup (entries it registered
        before failing are removed again), until it imports. A lookup from inside one of these imports
        sees the entries registered so far.
        """
        if self._package is None or self._loading:
            return
        package = self._package
        self._loading = True
        try:
            path = importlib.import_module(package).__path__
            for module in pkgutil.iter_modules(path):
                if not module.name.startswith("_"):
                    self._import_extension(f"{package}.{module.name}")
            self._package = None  # loaded: every module imported
        finally:
            self._loading = False

    def _import_extension(self, name: str) -> None:
        before = dict(self._entries)
        prefixes = dict(self._prefixes)
        try:
            importlib.import_module(name)
        except Exception as exc:
            # Python drops the failed module from sys.modules, so the next lookup imports it again; what it
            # registered before failing goes too, so that import does not fail on "already registered".
            self._entries, self._prefixes = before, prefixes
            raise ExtensionImportError(
                f"{self.kind} extension module {name} failed to import: {type(exc).__name__}: {exc}"
            ) from exc

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` above a factory."""

        def decorator(factory: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = factory
            if isinstance(factory, type):  # a class entry learns its name here, not by writing it again
                factory.name = name  # type: ignore[attr-defined]
            return factory

        return decorator

    def unregister(self, name: str) -> None:
        """Remove entry ``name`` (e.g. a throwaway one a test registered); unknown names are ignored."""
        self._entries.pop(name, None)

    def register_prefix(self, prefix: str) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
        """Register a resolver for a family of names such as ``timm:<model>``.

        The resolver receives the part after the prefix and returns the factory.
        """

        def decorator(resolver: Callable[[str], T]) -> Callable[[str], T]:
            self._prefixes[prefix] = resolver
            return resolver

        return decorator

    def options(self, name: str, *, skip: Collection[str] = ()) -> dict[str, Any]:
        """The options entry ``name`` takes (its constructor's keyword parameters, minus ``skip``) with
        their defaults: the one place those defaults are written."""
        return {k: v for k, v in keyword_defaults(self.get(name)).items() if k not in skip}  # type: ignore[arg-type]

    def check_options(self, name: str, options: Mapping[str, Any], *, skip: Collection[str] = ()) -> None:
        """Raise :class:`UnknownOptionError` unless entry ``name`` takes every key of ``options``."""
        accepted = self.options(name, skip=skip)
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            given = ", ".join(repr(u) for u in unknown)
            takes = ", ".join(accepted) or "none"
            raise UnknownOptionError(f"{self.kind} {name!r} has no option {given}; its options: {takes}")

    def get(self, name: str) -> T:
        self._load()
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
        self._load()
        return sorted(self._entries)

    def prefixes(self) -> list[str]:
        self._load()
        return sorted(self._prefixes)

    def __contains__(self, name: object) -> bool:
        self._load()
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)
