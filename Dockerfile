# hermes-s6 image layer: the static tools and their s6 wiring on top of a
# hermes image, with s6-overlay as PID 1.
#
#   docker build \
#     --build-arg S6_OVERLAY_NOARCH_SHA256=<sha256 of s6-overlay-noarch.tar.xz> \
#     --build-arg S6_OVERLAY_X86_64_SHA256=<sha256 of s6-overlay-x86_64.tar.xz> \
#     [--build-arg BASE_IMAGE=your/hermes-agent:tag] .
#
# The checksums have no defaults on purpose: take them from the release's
# .sha256 files once, pin them in your build; a mismatch fails the build.

ARG BASE_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1.95-bookworm
ARG S6_OVERLAY_VERSION=3.2.3.2

# --- the static binaries and the overlay, laid out by the Makefile ----------
FROM ${RUST_IMAGE} AS build
ARG TARGETARCH=amd64
WORKDIR /src
COPY Cargo.toml Cargo.lock Makefile ./
COPY bins ./bins
COPY src ./src
COPY rootfs ./rootfs
COPY etc-cont-init.d ./etc-cont-init.d
COPY s6-rc.d ./s6-rc.d
RUN case "${TARGETARCH}" in \
      amd64) target=x86_64-unknown-linux-musl ;; \
      arm64) target=aarch64-unknown-linux-musl ;; \
      *) echo "unsupported TARGETARCH=${TARGETARCH}" >&2; exit 1 ;; \
    esac \
 && rustup target add "${target}" \
 && make install TARGET="${target}" DESTDIR=/overlay

# --- s6-overlay, fetched and checked against pinned checksums ---------------
FROM debian:bookworm-slim AS s6-overlay
ARG TARGETARCH=amd64
ARG S6_OVERLAY_VERSION
ARG S6_OVERLAY_NOARCH_SHA256=
ARG S6_OVERLAY_X86_64_SHA256=
ARG S6_OVERLAY_AARCH64_SHA256=
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008 # the fetch stage is thrown away; only the checksums matter
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl xz-utils \
 && rm -rf /var/lib/apt/lists/*
RUN case "${TARGETARCH}" in \
      amd64) arch=x86_64; sum="${S6_OVERLAY_X86_64_SHA256}" ;; \
      arm64) arch=aarch64; sum="${S6_OVERLAY_AARCH64_SHA256}" ;; \
      *) echo "unsupported TARGETARCH=${TARGETARCH} for s6-overlay" >&2; exit 1 ;; \
    esac \
 && if [ -z "${S6_OVERLAY_NOARCH_SHA256}" ] || [ -z "${sum}" ]; then \
      echo "set --build-arg S6_OVERLAY_NOARCH_SHA256 and S6_OVERLAY_${arch^^}_SHA256 (from the v${S6_OVERLAY_VERSION} release's .sha256 files)" >&2; exit 1; \
    fi \
 && url="https://github.com/just-containers/s6-overlay/releases/download/v${S6_OVERLAY_VERSION}" \
 && curl -fsSL --retry 3 -o /tmp/s6-overlay-noarch.tar.xz "${url}/s6-overlay-noarch.tar.xz" \
 && curl -fsSL --retry 3 -o "/tmp/s6-overlay-${arch}.tar.xz" "${url}/s6-overlay-${arch}.tar.xz" \
 && printf '%s  %s\n' "${S6_OVERLAY_NOARCH_SHA256}" /tmp/s6-overlay-noarch.tar.xz \
                      "${sum}" "/tmp/s6-overlay-${arch}.tar.xz" | sha256sum -c - \
 && mkdir /rootfs \
 && tar -C /rootfs -Jxpf /tmp/s6-overlay-noarch.tar.xz \
 && tar -C /rootfs -Jxpf "/tmp/s6-overlay-${arch}.tar.xz"

# --- the image ----------------------------------------------------------------
FROM ${BASE_IMAGE}
COPY --from=s6-overlay /rootfs/ /
# The user exists in hermes images already; a plain base gets it here.
RUN if ! getent passwd hermes >/dev/null; then \
      getent group hermes >/dev/null || groupadd -g 10000 hermes; \
      useradd -u 10000 -g hermes -m -d /opt/data -s /bin/sh hermes; \
    fi
COPY --from=build /overlay/ /
ENV HERMES_HOME=/opt/data
VOLUME ["/opt/data"]
ENTRYPOINT ["/init"]
