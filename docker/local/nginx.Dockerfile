# nginx from Debian's package, for compose on a machine with no image registry
# (deploy/compose.local.yaml; built by `python3 docker/local_build.py compose-images`).
# Same contract as the official nginx image compose uses: the site in
# /etc/nginx/conf.d/default.conf, logs on stdout/stderr, wget for the health check.
ARG BASE_IMAGE=sidetask-base:bookworm
FROM ${BASE_IMAGE}
# Versions follow the base image's Debian release (bookworm), as the base itself does.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx wget \
    && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 8080
# graceful: finish the requests in flight, as the official image's STOPSIGNAL does
STOPSIGNAL SIGQUIT
ENTRYPOINT ["nginx", "-g", "daemon off;"]
