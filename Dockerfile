# vouch's container image: `vouch serve` as the Gatekeeper external data provider.
#
#   docker build -t registry.example/vouch:0.1.0 .
#
# Build stage: the toolchain the tests run with here (1.95), the locked dependencies, the
# release profile, the `vouch` binary only (aws-lc builds with the image's gcc; no cmake).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p vouch \
    && install -D -m 0755 target/release/vouch /out/vouch

# Runtime: glibc, CA certificates and nothing else (no shell, no package manager); runs as
# the image's unprivileged user 65532, the same IDs the Helm chart sets.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/vouch /usr/local/bin/vouch
USER 65532:65532
# 6001 HTTPS for Gatekeeper, 9099 /healthz and /readyz, 8888 /metrics.
EXPOSE 6001 9099 8888
ENTRYPOINT ["/usr/local/bin/vouch"]
CMD ["serve", "--config", "/etc/vouch/config"]
