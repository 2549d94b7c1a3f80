# syntax=docker/dockerfile:1
#
# One image with both programs of the stack: the sidecar (the entrypoint) and
# the Ops-Core core (run it with --entrypoint /usr/local/bin/opscore, as
# docker-compose.real-agentkit.yml does). Static binaries on distroless: no
# shell, no package manager, a numeric non-root user.
#
#   docker build -t opscore-sidecar:local .
#   docker run --rm -p 8080:8080 -e SIDECAR_UPSTREAM_URL=http://core:8000 opscore-sidecar:local
#   docker run --rm -p 8000:8000 --no-healthcheck --entrypoint /usr/local/bin/opscore opscore-sidecar:local
#
# The image's HEALTHCHECK probes the sidecar, so a core container needs its own
# exec-form check (compose gives it "opscore healthcheck") or --no-healthcheck:
# docker run's --health-cmd is shell form, and distroless has no shell.

# A full patch version, at least the go line of go.mod: the golang images set
# GOTOOLCHAIN=local, so an older cached golang:1.26 would refuse to build.
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Module downloads get their own layer so a source change does not refetch them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# VERSION ends up in opscore_sidecar_build_info{version=...}:
#   docker build --build-arg VERSION=$(git describe --tags --always) .
ARG VERSION=dev
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w -X opscore-sidecar/metrics.Version=${VERSION}" -o /out/sidecar ./cmd/sidecar && \
    go build -trimpath -ldflags "-s -w" -o /out/opscore ./cmd/opscore && \
    mkdir -p /out/outbox

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sidecar /usr/local/bin/sidecar
COPY --from=build /out/opscore /usr/local/bin/opscore
COPY configs/sidecar.yaml /etc/sidecar/sidecar.yaml
# The durable outbox (registrations accepted with 202 while the core is down,
# docs/resilience.md): a directory the non-root user owns, and a volume so a
# container restart keeps what is queued. Distroless has no shell to mkdir.
# The environment beats the config file: to move the outbox, set
# SIDECAR_OUTBOX_DIR (an outbox.dir in a mounted config is ignored) or mount
# the volume here (README.md, "Running it").
COPY --from=build --chown=65532:65532 /out/outbox /var/lib/opscore-sidecar
ENV SIDECAR_OUTBOX_DIR=/var/lib/opscore-sidecar
VOLUME /var/lib/opscore-sidecar
# 65532 is distroless's "nonroot"; numeric so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# 8080 sidecar traffic, 9901 sidecar admin (/healthz, /readyz, /metrics), 8000 core.
EXPOSE 8080 9901 8000
# The sidecar's admin server listens on 127.0.0.1:9901 unless told otherwise,
# so the probe works whether or not the admin port is opened to the network.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/sidecar", "healthcheck", "--url", "http://127.0.0.1:9901/readyz"]
ENTRYPOINT ["/usr/local/bin/sidecar"]
CMD ["--config", "/etc/sidecar/sidecar.yaml"]
