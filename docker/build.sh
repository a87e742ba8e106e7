#!/usr/bin/env bash
# The container image's build steps, as a script: docker/Dockerfile runs it in its build stage,
# and CI runs it natively (ctest docker.build) because no Docker engine runs on the test
# machines, so the recipe is exercised even where the image cannot be built.
#
#   docker/build.sh [--install-deps] [--prefix DIR] [--build-dir DIR]
#
# Builds rsproxy in Release with warnings as errors and without the test suite, installs it
# under DIR (default /out) as DIR/usr/local/bin/rsproxy, strips it, runs it once (--version,
# --help), and checks that every shared library it needs comes from a package listed in
# docker/runtime-packages.txt, the runtime stage's package list. A library added to the build
# without its runtime package fails here instead of in a container at start-up.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
prefix=/out
build=
install_deps=

while [ $# -gt 0 ]; do
    case "$1" in
    --install-deps) install_deps=1 ;;
    --prefix) prefix=$2; shift ;;
    --build-dir) build=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
build=${build:-$(mktemp -d "${TMPDIR:-/tmp}/rsproxy-image-build.XXXXXX")}

packages() { grep -v '^\s*#' "$1" | grep -v '^\s*$'; }

if [ -n "$install_deps" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2046
    apt-get install -y -q --no-install-recommends $(packages "$here/build-packages.txt")
fi

echo "== configure ($build)"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DRSPROXY_WERROR=ON -DBUILD_TESTING=OFF \
    >/dev/null
echo "== build rsproxy"
cmake --build "$build" --target rsproxy -j"$(nproc 2>/dev/null || echo 2)"
echo "== install into $prefix"
DESTDIR="$prefix" cmake --install "$build" --prefix /usr/local --strip >/dev/null
bin="$prefix/usr/local/bin/rsproxy"
[ -x "$bin" ] || { echo "build.sh: $bin was not installed" >&2; exit 1; }

echo "== smoke: $bin --version"
"$bin" --version
"$bin" --help >/dev/null

echo "== runtime libraries against docker/runtime-packages.txt"
wanted=$(packages "$here/runtime-packages.txt" | sort -u)
missing=0
for lib in $(objdump -p "$bin" | awk '/NEEDED/ {print $2}'); do
    case "$lib" in
    libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | ld-linux*) continue ;; # libc6, always there
    esac
    # awk reads to the end (no early exit): ldconfig killed by SIGPIPE would fail the pipeline
    # under pipefail, now and then, depending on timing.
    path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|aarch64|64bit/ && !p {p = $NF} END {print p}')
    [ -n "$path" ] || path=$(ldconfig -p | awk -v l="$lib" '$1 == l && !p {p = $NF} END {print p}')
    # dpkg records some libraries under /lib and others under /usr/lib (merged /usr): try
    # the path as found, its target, and both spellings.
    real=$(readlink -f "$path")
    pkg=
    for cand in "$path" "$real" "${path#/usr}" "/usr${path#/usr}" "${real#/usr}" "/usr${real#/usr}"; do
        pkg=$(dpkg -S "$cand" 2>/dev/null | head -1 | cut -d: -f1 || true)
        [ -n "$pkg" ] && break
    done
    if [ -z "$pkg" ]; then
        echo "   $lib: no Debian package owns $path" >&2
        missing=1
    elif ! grep -qx "$pkg" <<<"$wanted"; then
        echo "   $lib: from $pkg, which docker/runtime-packages.txt does not list" >&2
        missing=1
    else
        echo "   $lib <- $pkg"
    fi
done
[ "$missing" -eq 0 ] || { echo "build.sh: runtime package list is incomplete" >&2; exit 1; }
echo "== done: $bin"
