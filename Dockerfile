# One image for every socialpipe command: `docker run IMAGE worker feed`,
# `IMAGE migrate up`, `IMAGE api --host 0.0.0.0`, ...
#
#   make image                      # tags socialpipe:<version>, labels version and commit
#   docker build --build-arg VERSION=0.1.0 --build-arg VCS_REF=$(git rev-parse HEAD) .
#
# The base image. Pin it by digest for a release, as the tag moves with every Debian and
# Python patch release:
#   --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>
# with the digest `docker buildx imagetools inspect python:3.11-slim-bookworm` prints.
# No digest is committed here because none has been verified against the registry yet:
# an unverified digest would only fail the build (or pin the wrong image).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: install the locked runtime closure into a virtualenv ------------------------
# checkov:skip=CKV_DOCKER_7: the tag comes from PYTHON_IMAGE above (a digest for a release)
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from the lock alone, so code changes reuse this layer. Every
# distribution is pinned with its hashes (`make lock`); only the runtime closure: the
# load tester's emulators, the broker binary, plotting and the test tools are extras.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

COPY . .
RUN pip install --no-deps . \
    && python -m compileall -q /opt/venv/lib

# --- runtime: the virtualenv on a slim base, as an unprivileged user ------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG VCS_REF=unknown
LABEL org.opencontainers.image.title="socialpipe" \
      org.opencontainers.image.description="Event pipelines of a professional social network: workers, relay, API and operator tools." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}"
RUN groupadd --system --gid 10001 socialpipe \
    && useradd --system --uid 10001 --gid socialpipe --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin socialpipe
COPY --from=builder /opt/venv /opt/venv
# BUILD_COMMIT labels the socialpipe_build_info metric of every process.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    METRICS_PORT=9100 \
    BUILD_COMMIT=${VCS_REF}
WORKDIR /app
USER 10001:10001

# 9100: /metrics, /healthz and /readyz of every process (METRICS_PORT);
# 8000: the GraphQL API, with its own /healthz and /readyz.
EXPOSE 9100 8000

# Probes the process's own health endpoint; METRICS_PORT=0 (metrics off) counts as healthy.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; p = os.environ.get('METRICS_PORT', '9100'); p == '0' or urllib.request.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=2).close()"]

ENTRYPOINT ["socialpipe"]
CMD ["--help"]
