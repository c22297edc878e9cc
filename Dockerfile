# The Bzzz agent image: one agent per cluster node (see deploy/swarm-stack.yml).
FROM python:3.11-slim

# git: agents work in repositories; tini: reaps task processes and forwards SIGTERM.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/bzzz --uid 10001 bzzz

WORKDIR /opt/bzzz
COPY pyproject.toml README.md ./
COPY bzzz ./bzzz
RUN pip install --no-cache-dir . && rm -rf /opt/bzzz/build

USER 10001
ENV BZZZ_DATA_DIR=/var/lib/bzzz \
    BZZZ_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/bzzz"]
EXPOSE 4001/tcp 8090/tcp
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; h, _, p = os.environ.get('BZZZ_API_LISTEN', '127.0.0.1:8090').rpartition(':'); h = '127.0.0.1' if h in ('0.0.0.0', '') else h; urllib.request.urlopen(f'http://{h}:{p}/healthz', timeout=2)"]
ENTRYPOINT ["/usr/bin/tini", "--", "bzzz"]
CMD ["run"]
