# syntax=docker/dockerfile:1
#
# The watchpool operator image.
#
#   docker build -t ghcr.io/watchpool/watchpool-operator:0.1.0 \
#     --build-arg GIT_COMMIT="$(git rev-parse --short HEAD)" .
#
# The tag must match the chart's appVersion (charts/watchpool/Chart.yaml): the chart's default
# image is ghcr.io/watchpool/watchpool-operator:<appVersion>.

# The toolchain pinned by rust-toolchain.toml.
ARG RUST_VERSION=1.95.0

# Debian 12 (bookworm), like the runtime image below: the binary links against its glibc.
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS builder
ARG RUST_VERSION
# Use the image's toolchain as is; rust-toolchain.toml would also ask for rustfmt and clippy,
# which a release build does not need.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION}
WORKDIR /src
# The commit the binary reports (`watchpool-operator version`, metric watchpool_build_info);
# .git is not part of the build context.
ARG GIT_COMMIT=unknown
ENV WATCHPOOL_GIT_COMMIT=${GIT_COMMIT}
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p watchpool-operator \
    && install -D -m 0755 target/release/watchpool-operator /out/watchpool-operator

# Minimal runtime: glibc and CA certificates, no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="watchpool-operator" \
      org.opencontainers.image.description="Resilient, CPU-bounded Kubernetes watch pools declared by WatchPolicy resources." \
      org.opencontainers.image.source="https://github.com/watchpool/watchpool" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
COPY --from=builder /out/watchpool-operator /usr/local/bin/watchpool-operator
# glibc gives every thread that allocates its own heap arena (up to 8 per core); memory freed in
# one arena is not reused by another, so the operator's resident size grows with the runtime's
# threads rather than with what it holds. Two arenas keep it near the live heap
# (docs/performance.md, Scale: 315 MiB with the default arenas, see the table for two).
ENV MALLOC_ARENA_MAX=2
# The distroless "nonroot" user; the chart runs as the same id (runAsUser 65532).
USER 65532:65532
# Admin server: /metrics, /livez, /readyz, /debug/pools.
EXPOSE 8080
ENTRYPOINT ["watchpool-operator"]
CMD ["run"]
