# Cloud Run image of pipeline-run-metrics: build with the locked dependencies, run as non-root
# in a minimal Debian image that has CA certificates (TLS to Google APIs).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY handlers ./handlers
COPY benches ./benches
RUN cargo build --release --locked --bin pipeline-run-metrics

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home app
COPY --from=build /src/target/release/pipeline-run-metrics /usr/local/bin/pipeline-run-metrics
USER 10001
# Cloud Run sets PORT; the function listens on 0.0.0.0:$PORT (default 8080).
ENV PORT=8080 HOST=0.0.0.0
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/pipeline-run-metrics"]
