# syntax=docker/dockerfile:1.7
# netpol-guard: a static binary (rustls with ring, no OpenSSL) on distroless, non-root.
#
#   docker build -t netpol-guard:dev --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#
# Builds for the architecture of the build platform (buildx with QEMU for others).

# Base images by tag and digest: the tag says what it is, the digest fixes the bytes (a
# rebuild gets the same base until these lines change). To move on:
#   crane digest rust:1.95-bookworm; crane digest gcr.io/distroless/static-debian12:nonroot
ARG RUST_IMAGE=rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab

FROM ${RUST_IMAGE} AS build
# musl-tools: the C parts (ring, mimalloc) are compiled with musl-gcc. Debian package
# versions are not pinned: bookworm only ships security fixes for them, and pins break
# whenever the mirror moves on.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# the revision `--version` names (the build has no .git)
ARG REVISION=unknown
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    target="$(uname -m)-unknown-linux-musl" \
 && rustup target add "$target" \
 && NETPOL_GUARD_REVISION="$REVISION" cargo build --release --locked --bin netpol-guard --target "$target" \
 && cp "target/$target/release/netpol-guard" /netpol-guard \
 && /netpol-guard --version

# distroless static: no shell, no package manager; CA roots and /etc/passwd for nonroot.
FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="netpol-guard" \
      org.opencontainers.image.description="Kubernetes admission webhook that keeps NetworkPolicy from breaking clusters" \
      org.opencontainers.image.source="https://github.com/netpol-guard/netpol-guard" \
      org.opencontainers.image.url="https://github.com/netpol-guard/netpol-guard" \
      org.opencontainers.image.documentation="https://github.com/netpol-guard/netpol-guard#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /netpol-guard /netpol-guard
USER 65532:65532
# webhook (TLS), metrics and health (plain HTTP)
EXPOSE 8443 8080
ENTRYPOINT ["/netpol-guard"]
CMD ["serve"]
