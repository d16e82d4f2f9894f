"""event-pipeline: typed Avro events on Kafka, with workers, a scheduler and a lag monitor.

The public surface is re-exported here from small private modules; ``__all__`` is the contract
(a test fails if it drifts from what the private modules export).
"""

from ._catalog import Catalog, CompatibilityMode, SchemaVersion
from ._codec import Codec
from ._compat import Incompatibility, check_catalog
from ._errors import *  # noqa: F403
from ._errors import __all__ as _errors_all
from ._events import Event, Record, check_model
from ._settings import *  # noqa: F403
from ._settings import __all__ as _settings_all
from ._topics import Drift, TopicReport, TopicSpec, ensure_topics, load_topic_specs
from ._version import __version__ as __version__

__all__ = sorted(
    [
        *_errors_all,
        *_settings_all,
        "Catalog",
        "Codec",
        "CompatibilityMode",
        "Drift",
        "Event",
        "Incompatibility",
        "Record",
        "SchemaVersion",
        "TopicReport",
        "TopicSpec",
        "__version__",
        "check_catalog",
        "check_model",
        "ensure_topics",
        "load_topic_specs",
    ]
)
