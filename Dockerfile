# The image ferry runs in on a cluster: stage pods (`ferry run --executor
# kubernetes` runs `ferry stage run` in it), the tracking server and gateways
# (`ferry export k8s`, whose arguments follow the entrypoint `ferry`). ferry, Python 3 with venv, and uv to build a stage's
# environment from its requirements; runs as uid 10001, which every manifest
# ferry writes asks for.
#
#   docker build -t registry.example.com/ferry:0.1 .
#
# A team's own image: start from this one and add system libraries (CUDA,
# a database driver), or from theirs and copy /usr/local/bin/ferry and uv in.
# Its user must be 10001 and it must not need a writable root filesystem.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ferry --features postgres \
 && strip target/release/ferry

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates git python3 python3-venv python3-pip tini \
 && python3 -m pip install --break-system-packages --no-cache-dir uv==0.13.9 \
 && apt-get purge -y python3-pip && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 ferry && useradd --uid 10001 --gid 10001 --home-dir /work --no-create-home ferry \
 && mkdir -p /work /var/cache/ferry && chown 10001:10001 /work /var/cache/ferry
COPY --from=build /src/target/release/ferry /usr/local/bin/ferry
USER 10001:10001
WORKDIR /work
ENV HOME=/work UV_CACHE_DIR=/work/.cache/uv
ENTRYPOINT ["/usr/bin/tini", "--", "ferry"]
CMD ["--help"]
