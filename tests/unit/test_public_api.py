"""The public surface: each package's ``__all__`` resolves and covers its private modules.

(Sort order of ``__all__`` literals is enforced by ruff's RUF022.)"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

# Private modules whose whole ``__all__`` is public API of their package.
REEXPORTED = {
    "pipeline": ["_errors", "_settings", "_topics"],
    "producers": ["_async", "_delivery", "_metrics", "_producer"],
}


@pytest.mark.parametrize(
    "name", ["pipeline", "producers", "consumers", "pipeline.lag", "pipeline.stats"]
)
def test_all_resolves(name: str) -> None:
    try:
        package: ModuleType = importlib.import_module(name)
    except ModuleNotFoundError:
        pytest.skip(f"{name} not built yet")
    exported = list(package.__all__)
    assert len(set(exported)) == len(exported)
    missing = [n for n in exported if not hasattr(package, n)]
    assert missing == []


@pytest.mark.parametrize(("package", "modules"), sorted(REEXPORTED.items()))
def test_private_modules_are_reexported(package: str, modules: list[str]) -> None:
    pkg = importlib.import_module(package)
    for module in modules:
        private = importlib.import_module(f"{package}.{module}")
        not_exported = set(private.__all__) - set(pkg.__all__)
        # Delivery internals used only by the producer itself stay private.
        not_exported -= {"delivery_error", "result_of", "HeaderInput", "MetricsSink", "UserReport"}
        assert not_exported == set(), f"{package}.{module} exports {sorted(not_exported)}"
