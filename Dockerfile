# The gapmon image: the `gapmon` CLI with the streaming extra (aiokafka, aiohttp, Redis,
# prometheus-client, slack_sdk). docker-compose.yml runs it as the workers, `init` and
# `demo-events`; by itself: `docker build -t gapmon . && docker run --rm gapmon --help`.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Build from a scratch folder and install into site-packages (not editable): the image
# holds the installed distribution, not a source tree. Every dependency has a manylinux
# wheel for CPython 3.11, so no compiler is needed. The cache mount (BuildKit) keeps
# downloaded wheels between builds without putting them in a layer.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams/ streams/
COPY monitors/ monitors/
COPY pacing/ pacing/
COPY alerts/ alerts/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install ".[stream]" \
    && rm -rf /src

# The YAML sales ops edit; docker-compose.yml bind-mounts ./config over it so an edit
# needs a restart, not a rebuild.
WORKDIR /app
COPY config/ config/

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin gapmon
ENV GAPMON_CONFIG_DIR=/app/config
USER gapmon

ENTRYPOINT ["gapmon"]
CMD ["worker"]
