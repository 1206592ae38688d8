# syntax=docker/dockerfile:1
#
# tabgrid coordinator image. Build: docker build -t tabgrid .
# Run:   docker run -p 8080:8080 -e TABGRID_API_TOKENS=... tabgrid serve
# docker-compose.yml runs two of these behind nginx, sharing one Redis.

# --- build stage: the full Go toolchain, discarded afterwards ---
FROM golang:1.26 AS build
WORKDIR /src
# Module downloads are their own layer, so a source change does not
# download every module again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO off: a static binary that needs nothing from the runtime image.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/tabgrid ./cmd/tabgrid

# --- runtime stage: slim Debian with curl only for the healthcheck ---
FROM debian:trixie-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin tabgrid
COPY --from=build /out/tabgrid /usr/local/bin/tabgrid
USER 10001:10001
ENV TABGRID_ADDR=:8080
EXPOSE 8080
# Liveness only; load balancers should route by /readyz, which also
# checks the store.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
# SIGTERM makes tabgrid hand in-flight tasks back and close tab sockets
# with "going away"; give it longer than --shutdown-timeout (10s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tabgrid"]
CMD ["serve"]
