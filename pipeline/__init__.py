"""event-pipeline: typed Avro events on Kafka, with workers, a scheduler and a lag monitor."""

from ._errors import *  # noqa: F403
from ._errors import __all__ as _errors_all
from ._settings import *  # noqa: F403
from ._settings import __all__ as _settings_all
from ._version import __version__ as __version__

__all__ = sorted([*_errors_all, *_settings_all, "__version__"])
