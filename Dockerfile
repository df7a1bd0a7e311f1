# hermes-s6: the static tools and their s6 wiring, as one of two targets.
#
#   image  a complete image: a Debian base, s6-overlay 3.2.3.2 (noarch, arch
#          and both symlinks tarballs, each sha256-checked) as PID 1
#          (ENTRYPOINT ["/init"]), /command on PATH, the hermes user.
#          The default target.
#   layer  the tools and wiring on top of an existing hermes-agent image
#          (HERMES_BASE_IMAGE), which brings its own s6-overlay (3.2.3.0 or
#          newer), user, ENTRYPOINT and CMD: all kept as they are.
#
#   docker build --target image \
#     --build-arg S6_OVERLAY_NOARCH_SHA256=<sha256 of s6-overlay-noarch.tar.xz> \
#     --build-arg S6_OVERLAY_X86_64_SHA256=<sha256 of s6-overlay-x86_64.tar.xz> \
#     --build-arg S6_OVERLAY_SYMLINKS_NOARCH_SHA256=<sha256 of s6-overlay-symlinks-noarch.tar.xz> \
#     --build-arg S6_OVERLAY_SYMLINKS_ARCH_SHA256=<sha256 of s6-overlay-symlinks-arch.tar.xz> .
#   docker build --target layer --build-arg HERMES_BASE_IMAGE=your/hermes-agent:tag .
#
# The checksums have no defaults on purpose: take them from the release's
# .sha256 files once, pin them in your build; a mismatch fails the build.

ARG BASE_IMAGE=debian:bookworm-slim
ARG HERMES_BASE_IMAGE=hermes-agent:latest
ARG RUST_IMAGE=rust:1.95-bookworm
ARG S6_OVERLAY_VERSION=3.2.3.2

# --- the overlay, laid out by the Makefile -----------------------------------
# /usr/bin/hermes-s6, every tool in one static executable, and a symlink per
# tool name (doc/hermes-s6.md); `COPY --from` keeps the symlinks.
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
ARG S6_OVERLAY_SYMLINKS_NOARCH_SHA256=
ARG S6_OVERLAY_SYMLINKS_ARCH_SHA256=
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
 && if [ -z "${S6_OVERLAY_NOARCH_SHA256}" ] || [ -z "${sum}" ] \
       || [ -z "${S6_OVERLAY_SYMLINKS_NOARCH_SHA256}" ] || [ -z "${S6_OVERLAY_SYMLINKS_ARCH_SHA256}" ]; then \
      echo "set --build-arg S6_OVERLAY_NOARCH_SHA256, S6_OVERLAY_${arch^^}_SHA256, S6_OVERLAY_SYMLINKS_NOARCH_SHA256 and S6_OVERLAY_SYMLINKS_ARCH_SHA256 (from the v${S6_OVERLAY_VERSION} release's .sha256 files)" >&2; exit 1; \
    fi \
 && url="https://github.com/just-containers/s6-overlay/releases/download/v${S6_OVERLAY_VERSION}" \
 && mkdir /rootfs \
 && for pair in "s6-overlay-noarch.tar.xz ${S6_OVERLAY_NOARCH_SHA256}" \
                "s6-overlay-${arch}.tar.xz ${sum}" \
                "s6-overlay-symlinks-noarch.tar.xz ${S6_OVERLAY_SYMLINKS_NOARCH_SHA256}" \
                "s6-overlay-symlinks-arch.tar.xz ${S6_OVERLAY_SYMLINKS_ARCH_SHA256}"; do \
      file="${pair% *}" && want="${pair#* }" \
      && curl -fsSL --retry 3 -o "/tmp/${file}" "${url}/${file}" \
      && printf '%s  %s\n' "${want}" "/tmp/${file}" | sha256sum -c - \
      && tar -C /rootfs -Jxpf "/tmp/${file}" || exit 1; \
    done

# --- layer: on a hermes-agent image ------------------------------------------
# The base keeps its s6-overlay, its user, its ENTRYPOINT (the dispatch
# script that runs /init and the CMD logic) and its CMD: this stage sets
# neither. The wiring lists the services in both bundle directories, so
# the base's s6-overlay (3.2.3.0 reads only s6-rc.d/user/contents.d) starts
# them. /command goes at the end of PATH, so `docker exec` finds s6-svstat.
FROM ${HERMES_BASE_IMAGE} AS layer
COPY --from=build /overlay/ /
ENV PATH="${PATH}:/command"

# --- image: a complete image with s6-overlay as PID 1 ------------------------
FROM ${BASE_IMAGE} AS image
COPY --from=s6-overlay /rootfs/ /
# The user exists in hermes images already; a plain base gets it here.
RUN if ! getent passwd hermes >/dev/null; then \
      getent group hermes >/dev/null || groupadd -g 10000 hermes; \
      useradd -u 10000 -g hermes -m -d /opt/data -s /bin/sh hermes; \
    fi
COPY --from=build /overlay/ /
ENV PATH="/command:${PATH}" \
    HERMES_HOME=/opt/data
VOLUME ["/opt/data"]
ENTRYPOINT ["/init"]
