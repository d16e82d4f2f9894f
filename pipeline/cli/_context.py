"""The object every ``pipeline`` subcommand receives: settings loaded once, lazily."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline._admin import check_reachable
from pipeline._settings import Settings, load_settings

__all__ = ["CliContext"]


@dataclass
class CliContext:
    """Global options of the ``pipeline`` command, passed down with ``@click.pass_obj``."""

    bootstrap_servers: str | None = None
    verbose: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """Settings from the environment, with ``--bootstrap-servers`` winning.

        Over SASL or TLS the credentials are checked once, here: a refused password or an
        unverifiable certificate fails in a second or two with ``AuthenticationError`` (exit 2)
        instead of a transport failure after every timeout of the command.
        """
        if self._settings is None:
            settings = load_settings(bootstrap_servers=self.bootstrap_servers)
            if settings.security_protocol != "PLAINTEXT":
                check_reachable(settings, require=False)
            self._settings = settings
        return self._settings

    def override(self, **values: Any) -> Settings:
        """Settings with extra overrides (used by commands with their own connection flags)."""
        return load_settings(bootstrap_servers=self.bootstrap_servers, **values)
