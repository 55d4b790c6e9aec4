# ScanVault container images.
#
#   docker build -t scanvault .                    # the API (and embedded-SQLite) image
#   docker build --target worker -t scanvault-worker .   # the same plus the Trivy binary
#
# The runtime stages are distroless (no shell, no package manager), run as the fixed
# non-root UID 65532, and work with a read-only root filesystem: the service writes only to
# DATA_DIR (/data, the embedded SQLite database) and TMPDIR (/tmp); mount both writable
# (an emptyDir or a volume). No HEALTHCHECK: orchestrators probe /health and /ready.

ARG RUST_VERSION=1.95
ARG TRIVY_VERSION=0.59.1

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p scanvault --bin scanvault \
    && install -D -m 0755 target/release/scanvault /out/scanvault

FROM aquasec/trivy:${TRIVY_VERSION} AS trivy

FROM gcr.io/distroless/cc-debian12:nonroot AS api
# The repository the image is built from (--build-arg SOURCE=https://…) and its version.
ARG SOURCE=""
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ScanVault" \
      org.opencontainers.image.description="Store, analyse and run container vulnerability scans" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/scanvault /usr/local/bin/scanvault
ENV DATA_DIR=/data \
    TMPDIR=/tmp \
    SERVER_HOST=0.0.0.0 \
    SERVER_PORT=8080 \
    LOG_FORMAT=json
WORKDIR /data
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/scanvault"]
CMD ["serve"]

FROM api AS worker
COPY --from=trivy /usr/local/bin/trivy /usr/local/bin/trivy
ENV TRIVY_PATH=/usr/local/bin/trivy \
    TRIVY_CACHE_DIR=/tmp/trivy-cache
CMD ["worker"]
