# The Bzzz agent image: one agent per cluster node (see deploy/swarm-stack.yml).
#
# The base is pinned by digest through two build arguments, so the same file builds from the
# official image or from a locally made one:
#
#   docker build -t bzzz .                                   # python:3.11-slim at BASE_DIGEST
#   podman build --format docker -t bzzz \
#       --build-arg BASE=localhost/bzzz-base:bookworm \
#       --build-arg BASE_DIGEST=sha256:... .                 # what the test suite does
#
# The base needs Python 3.11 as `python3`; git and tini are installed from Debian when it
# lacks them (.ci/base-image.sh makes a bookworm base that has them). Python packages come
# from wheels/ in the build context when it holds any (`pip wheel -w wheels . pip`, what
# the test suite does: containers here cannot reach a package index), else from the index.
# Build with `--format docker` under podman: the OCI format has no HEALTHCHECK.
ARG BASE=python:3.11-slim
# python:3.11-slim's index digest (multi-arch) as published; refresh it with
# `docker buildx imagetools inspect python:3.11-slim` when moving the pin.
ARG BASE_DIGEST=sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# -- builder: a virtual environment in /opt/bzzz with Bzzz and its dependencies ------------
FROM ${BASE}@${BASE_DIGEST} AS builder
# PIP_OPTS: extra pip options, e.g. --no-index to insist on the wheels in wheels/
ARG PIP_OPTS=""
SHELL ["/bin/sh", "-eu", "-c"]
COPY wheels/ /wheels/
COPY pyproject.toml README.md /src/
COPY bzzz /src/bzzz
# The environment gets no pip: it runs from its wheel (wheels/pip-*.whl) or the base's own.
RUN python3 -m venv --without-pip /opt/bzzz; \
    set -- /wheels/pip-*.whl; \
    if [ -f "$1" ]; then pip="/opt/bzzz/bin/python $1/pip"; \
    else pip="python3 -m pip --python /opt/bzzz/bin/python"; fi; \
    $pip install --no-cache-dir --disable-pip-version-check --no-warn-script-location \
        $PIP_OPTS --find-links /wheels /src; \
    site=$(/opt/bzzz/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
    # What no agent loads (keeps the image under 250 MB): test suites, type stubs, gRPC (a
    # dependency of libp2p's AutoNAT stubs, which libp2p never imports), libp2p's examples
    # (installed as a top-level package) and netaddr's IEEE registry texts (MAC vendor
    # lookups); the import below proves the agent still starts.
    find "$site" -depth -type d \( -name tests -o -name SelfTest \) -exec rm -rf {} +; \
    find "$site" -name '*.pyi' -delete; \
    rm -rf "$site/grpc" "$site"/*-stubs "$site/examples" "$site"/netaddr/eui/*.txt; \
    # Byte-code checked by hash, not by the sources' times (which copying between stages
    # does not keep): a start imports the compiled modules instead of recompiling them.
    /opt/bzzz/bin/python -m compileall -q -f -j 0 --invalidation-mode unchecked-hash /opt/bzzz; \
    /opt/bzzz/bin/python -c 'import bzzz.cli, bzzz.agent, bzzz.devhub.app'; \
    /opt/bzzz/bin/bzzz --help >/dev/null

# -- the image: no compilers, no pip, the agent as uid 10001 -------------------------------
FROM ${BASE}@${BASE_DIGEST}
SHELL ["/bin/sh", "-eu", "-c"]
# git: agents work in repositories; tini: PID 1, reaps task processes and forwards SIGTERM.
RUN if ! command -v git >/dev/null || ! command -v tini >/dev/null; then \
        apt-get update; \
        apt-get install -y --no-install-recommends git tini ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    useradd --system --user-group --create-home --home-dir /var/lib/bzzz --uid 10001 bzzz
COPY --from=builder /opt/bzzz /opt/bzzz

USER 10001
WORKDIR /var/lib/bzzz
ENV PATH=/opt/bzzz/bin:$PATH \
    BZZZ_DATA_DIR=/var/lib/bzzz \
    BZZZ_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME ["/var/lib/bzzz"]
EXPOSE 4001/tcp 8090/tcp
# The agent announces its departure and exits 0 within a few seconds of SIGTERM.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; h, _, p = os.environ.get('BZZZ_API_LISTEN', '127.0.0.1:8090').rpartition(':'); h = '127.0.0.1' if h in ('0.0.0.0', '', '[::]') else h; urllib.request.urlopen(f'http://{h}:{p}/healthz', timeout=2)"]
ENTRYPOINT ["/usr/bin/tini", "--", "bzzz"]
CMD ["run"]
