# amx container image.
#
#   docker build -t amx .                           # Debian slim: /bin/sh and friends for your commands
#   docker build --target minimal -t amx:minimal .  # scratch: for commands that are static binaries
#   docker build --build-arg VERSION=v1.0.0 -t amx:v1.0.0 .
#
# Mount your configuration (and Lua rules) at /etc/amx; the default one
# only logs the alerts it receives. Keep /tmp writable (AMX_PAYLOAD_FILE)
# and /var/lib/amx too when state.path is set there.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# A static binary: no libc to match, runs on scratch as on Debian.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.buildVersion=${VERSION}" -o /out/amx . \
 && mkdir -p /out/tmp /out/etc/amx /out/var/lib/amx \
 && cp packaging/amx.yml /out/etc/amx/amx.yml

# The minimal variant: the binary, CA certificates (Redis over TLS) and a
# /tmp, nothing else. Commands must be static binaries you add to it.
FROM scratch AS minimal
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build --chmod=1777 /out/tmp /tmp
COPY --from=build --chown=65532:65532 /out/var/lib/amx /var/lib/amx
COPY --from=build /out/etc/amx /etc/amx
COPY --from=build /out/amx /usr/bin/amx
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/bin/amx"]
CMD ["-f", "/etc/amx/amx.yml", "-l", ":8080"]

# The default image: Debian slim, because the commands amx runs are mostly
# shell scripts that need /bin/sh, coreutils, curl and the like.
FROM debian:stable-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 999 --home-dir /var/lib/amx --shell /usr/sbin/nologin amx \
 && install -d -o amx -g amx -m 0750 /var/lib/amx
COPY --from=build /out/etc/amx /etc/amx
COPY --from=build /out/amx /usr/bin/amx
USER amx
WORKDIR /var/lib/amx
EXPOSE 8080
ENTRYPOINT ["/usr/bin/amx"]
CMD ["-f", "/etc/amx/amx.yml", "-l", ":8080"]
