# The image deploy/kha-proxy.yaml and deploy/kha-audit.yaml run (image: kha:latest, the binary at
# /usr/local/bin/kha). Build it from the repository's top directory:
#   docker build -t kha:latest .        (or: podman build -t kha:latest .)
# Two stages: Debian 12 with the build packages of scripts/debian-packages-lab.txt builds kha;
# the image is Debian 12 slim with only the libraries kha links and CA certificates.

FROM debian:12 AS build
WORKDIR /src
COPY scripts/debian-packages-lab.txt scripts/
RUN apt-get update -q && \
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' scripts/debian-packages-lab.txt | \
    grep -vE '^(etcd-server|etcd-client|python3|iproute2|libcmocka-dev)[[:space:]]*$' | \
    xargs apt-get install -y -q --no-install-recommends && \
    rm -rf /var/lib/apt/lists/*
COPY . .
RUN rm -rf build && meson setup build --buildtype=release -Dtests=false && ninja -C build src/kha && \
    PREFIX=/usr/local DESTDIR=/out scripts/install.sh build/src/kha

FROM debian:12-slim
RUN apt-get update -q && \
    apt-get install -y -q --no-install-recommends ca-certificates libssl3 libcurl4 \
        libjansson4 libyaml-0-2 libzstd1 libmnl0 libnftnl11 libnetfilter-conntrack3 && \
    rm -rf /var/lib/apt/lists/*
COPY --from=build /out/usr/local/bin/kha /usr/local/bin/kha
COPY --from=build /out/usr/local/share/doc/kha /usr/local/share/doc/kha
# the manifests run as root where they need it (NET_ADMIN for vip); kha needs no other user
ENTRYPOINT ["/usr/local/bin/kha"]
CMD ["--help"]
