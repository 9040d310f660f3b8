#!/usr/bin/env bash
# Builds tallyfy-bridge:local, tallyfy-sandbox:local and tallyfy-postgres:local from local
# material only, for machines whose Docker engine reaches no image registry (CI here). With a
# registry, use `docker build .` (and the official postgres image).
#
#   1. debian:bookworm-slim: if the engine has no such image, a bookworm root filesystem is made
#      with debootstrap (cached as a tarball) and `docker import`ed under that tag;
#   2. the bridge is built on the host twice (`cargo build --release`, without the `sandbox`
#      feature for the bridge image and with it for the sandbox image; the host must be
#      bookworm-like: glibc 2.36 or older);
#   3. the Dockerfile's runtime-local and sandbox-local targets copy those binaries in;
#   4. deploy/postgres/Dockerfile adds Debian's postgresql-15 to the same base (its packages come
#      from the Debian mirror, as debootstrap's did), for docker-compose.postgres.yml.
#
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian), TALLYFY_IMAGE_CACHE (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/tallyfy-bridge). Needs root for debootstrap (or sudo).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BASE_TAG=debian:bookworm-slim
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${TALLYFY_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tallyfy-bridge}
ROOTFS=$CACHE/bookworm-slim-rootfs.tar.gz
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

log() { printf '[build-images %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# Trims a debootstrapped tree the way Debian's -slim images are trimmed: no docs, man pages,
# locales or package lists, and dpkg told to keep them out of later installs too.
slim_rootfs() {
    local root=$1
    $SUDO tee "$root/etc/dpkg/dpkg.cfg.d/docker-slim" >/dev/null <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    $SUDO tee "$root/etc/apt/apt.conf.d/docker-clean" >/dev/null <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Install-Recommends "false";
EOF
    $SUDO find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
    $SUDO find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    $SUDO rm -rf "$root"/usr/share/{man,info,lintian}/* "$root"/var/lib/apt/lists/* \
        "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log \
        "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
    $SUDO find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias \
        -exec rm -rf {} +
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$MIRROR" "$MIRROR" |
        $SUDO tee "$root/etc/apt/sources.list" >/dev/null
}

make_rootfs() {
    command -v debootstrap >/dev/null || {
        log "installing debootstrap"
        $SUDO apt-get install -y --no-install-recommends debootstrap >/dev/null ||
            { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends debootstrap >/dev/null; }
    }
    tree=$(mktemp -d "${TMPDIR:-/tmp}/bookworm-rootfs.XXXXXX")
    trap '$SUDO rm -rf "$tree"' EXIT
    log "debootstrap bookworm (minbase + ca-certificates) from $MIRROR"
    $SUDO debootstrap --variant=minbase --include=ca-certificates bookworm "$tree" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1 ||
        { tail -n 30 "$CACHE/debootstrap.log" >&2; return 1; }
    slim_rootfs "$tree"
    $SUDO tar --numeric-owner --xattrs -C "$tree" -czf "$ROOTFS.partial" .
    mv "$ROOTFS.partial" "$ROOTFS"
    $SUDO rm -rf "$tree"
}

base_image() {
    if docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
        log "$BASE_TAG present"
        return
    fi
    mkdir -p "$CACHE"
    if [ -s "$ROOTFS" ]; then
        log "using cached root filesystem $ROOTFS"
    else
        make_rootfs
    fi
    log "importing $ROOTFS as $BASE_TAG"
    docker import \
        --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'LABEL org.tallyfy-bridge.origin=debootstrap' \
        "$ROOTFS" "$BASE_TAG" >/dev/null
}

# The same digest is computed by the container tests to tell whether the images are stale.
source_hash() {
    find Cargo.toml Cargo.lock src sandbox migrations config Dockerfile deploy/postgres -type f -print0 |
        LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}

# host_binary NAME [CARGO FLAGS]: builds the bridge and copies it to target/docker-bin/NAME.
host_binary() {
    local name=$1
    shift
    log "cargo build --release --bin tallyfy-bridge $*"
    cargo build --release --locked --bin tallyfy-bridge "$@"
    mkdir -p target/docker-bin
    # A copy, so a later cargo build cannot change the file while docker reads it.
    strip -o "target/docker-bin/$name.partial" target/release/tallyfy-bridge
    mv "target/docker-bin/$name.partial" "target/docker-bin/$name"
}

images() {
    local hash=$1
    if docker buildx version >/dev/null 2>&1; then
        log "docker build (BuildKit)"
    else
        log "docker build (legacy builder: no buildx; the local targets come first, so no Rust image is needed)"
    fi
    for target in runtime-local:tallyfy-bridge:local sandbox-local:tallyfy-sandbox:local; do
        docker build --quiet --target "${target%%:*}" --label "org.tallyfy-bridge.source-hash=$hash" \
            -t "${target#*:}" . >/dev/null
        log "built ${target#*:} ($(docker image inspect -f '{{.Size}}' "${target#*:}" |
            awk '{printf "%.1f MB", $1 / 1e6}'))"
    done
    # The host's network: the build's apt reaches the mirror the way the host does.
    docker build --quiet --network host --label "org.tallyfy-bridge.source-hash=$hash" \
        -t tallyfy-postgres:local deploy/postgres >/dev/null
    log "built tallyfy-postgres:local ($(docker image inspect -f '{{.Size}}' tallyfy-postgres:local |
        awk '{printf "%.1f MB", $1 / 1e6}'))"
}

case "${1:-}" in
--source-hash) source_hash; exit ;;
"") ;;
*) echo "usage: $0 [--source-hash]" >&2; exit 2 ;;
esac

# One build at a time per machine (CI, a developer and the container tests may all start one).
mkdir -p "$CACHE"
exec 9>"$CACHE/build-images.lock"
flock 9

start=$SECONDS
base_image
hash=$(source_hash)
host_binary tallyfy-bridge --no-default-features
host_binary tallyfy-bridge-sandbox
images "$hash"
# Rebuilds leave the previous images untagged; drop those of this project.
docker image prune -f --filter label=org.tallyfy-bridge.source-hash >/dev/null
log "done in $((SECONDS - start)) s"
