# The enrich image: `enrich run` on every connection of /etc/enrich/enrich.yaml, with Prometheus metrics
# and /health on port 9464. Build: docker build -t enrich .
# Kubernetes manifests that use it: deploy/kubernetes/.

# Build stage: the release binary, from the locked dependencies.
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --package enrich-cli --bin enrich \
    && install -m 0755 target/release/enrich /usr/local/bin/enrich

# Runtime stage: glibc and libgcc only (enrich carries its own TLS roots); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/enrich /usr/local/bin/enrich
# distroless' `nonroot` user (65532): nothing runs as root.
USER 65532:65532
ENV ENRICH_CONFIG=/etc/enrich/enrich.yaml
# Metrics and /health. The endpoint has no authentication: keep the port inside the cluster.
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/enrich"]
# `enrich run` unless told otherwise (a CronJob passes `sync NAME`).
CMD ["run", "--metrics", "0.0.0.0:9464", "--metrics-public"]
