# syntax=docker/dockerfile:1
# Static binary (rustls, no OpenSSL) on distroless, non-root.
FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/netpol-guard /netpol-guard

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="netpol-guard" \
      org.opencontainers.image.description="Admission webhook and checker that keeps NetworkPolicy from breaking clusters" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /netpol-guard /netpol-guard
USER 65532:65532
ENTRYPOINT ["/netpol-guard"]
CMD ["--help"]
