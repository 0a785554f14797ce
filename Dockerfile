# One image for every socialpipe command: `docker run IMAGE worker feed`,
# `IMAGE migrate up`, `IMAGE api --host 0.0.0.0`, ...

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: resolve and install everything into a virtualenv ----------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so code changes reuse this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --upgrade pip wheel \
    && pip install -r /tmp/requirements.txt

COPY . .
RUN pip install --no-deps . \
    && python -m compileall -q /opt/venv/lib

# --- runtime: the virtualenv on a slim base, as an unprivileged user ------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 socialpipe \
    && useradd --system --uid 10001 --gid socialpipe --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin socialpipe
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    METRICS_PORT=9100
WORKDIR /app
USER 10001:10001

# 9100: /metrics, /healthz, /readyz of workers and the relay; 8000: the GraphQL API.
EXPOSE 9100 8000

# Probes the process's own health endpoint; METRICS_PORT=0 (metrics off) counts as healthy.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; p = os.environ.get('METRICS_PORT', '9100'); p == '0' or urllib.request.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=2).close()"]

ENTRYPOINT ["socialpipe"]
CMD ["--help"]
