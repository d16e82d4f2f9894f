# The event-pipeline image: the `pipeline` CLI plus the example order system.
#   docker build -t event-pipeline .
#   docker run --rm -e PIPELINE_BOOTSTRAP_SERVERS=kafka:29092 event-pipeline doctor
# docker-compose.kafka.yml runs the example services from it:
#   pipeline topics apply examples/topics.toml      (topics-init; relative to WORKDIR /app)
#   pipeline scheduler run / pipeline lag serve     (scheduler, lag-exporter)
#   pipeline worker run examples.orders.payments:app   (and fulfillment, notifications)
#   python -m examples.orders.order_service      (order-service; --entrypoint python)
# and `python -m pipeline.demo` runs the whole demo in one container against any cluster.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY producers ./producers
COPY consumers ./consumers
COPY schemas ./schemas
COPY examples ./examples
RUN pip install .

# Run as an unprivileged user.
RUN useradd --create-home --uid 10001 pipeline
USER pipeline

ENTRYPOINT ["pipeline"]
CMD ["--help"]
