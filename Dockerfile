# consent-guard decision service: `consent-guard serve` on a redb store in /data.
# docker build -t consent-guard . ; see docs/deploying.md for the volumes and tokens.
FROM rust:1.90-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p consent-guard-cli --bin consent-guard \
 && cp target/release/consent-guard /usr/local/bin/consent-guard

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin consent-guard \
 && mkdir -p /data /etc/consent-guard \
 && chown consent-guard /data
COPY --from=build /usr/local/bin/consent-guard /usr/local/bin/consent-guard
USER consent-guard
VOLUME ["/data"]
EXPOSE 8181
# No curl in the image: bash asks /healthz over /dev/tcp.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8181 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["consent-guard", "serve"]
CMD ["--listen", "0.0.0.0:8181", "--policy", "/etc/consent-guard/policy.toml", "--store", "/data/consent.redb", \
     "--audit", "/data/audit", "--tokens", "/etc/consent-guard/tokens"]
