# Prometheus from Debian's package, for compose on a machine with no image registry
# (deploy/compose.local.yaml; built by `python3 docker/local_build.py compose-images`).
# Same contract as prom/prometheus: the binary is the entrypoint, compose gives the flags,
# the configuration in /etc/prometheus, data in /prometheus, not run as root.
ARG BASE_IMAGE=sidetask-base:bookworm
FROM ${BASE_IMAGE}
# Versions follow the base image's Debian release (bookworm), as the base itself does.
# The package's user gets a fixed id afterwards (numeric USER below).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* \
    && groupmod --gid 10002 prometheus \
    && usermod --uid 10002 --gid 10002 prometheus \
    && mkdir -p /prometheus \
    && chown -R prometheus:prometheus /prometheus /var/lib/prometheus
USER 10002:10002
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
