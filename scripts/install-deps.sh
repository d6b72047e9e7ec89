#!/usr/bin/env bash
# Installs every Debian 12 package the build, the tests and the benchmarks need.
# Idempotent and non-interactive; run as root (or it uses sudo).
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config clang llvm lld libclang-rt-14-dev clang-format
  # the function-length check (scripts/check-function-length.sh)
  universal-ctags
  # libraries
  libseccomp-dev libbpf-dev libcap-dev libboost-program-options-dev nlohmann-json3-dev
  libssl-dev libgtest-dev libgmock-dev libbenchmark-dev libldns-dev libsystemd-dev
  # BPF skeletons and vmlinux.h
  bpftool
  # tests and examples
  python3 python3-jsonschema iproute2 util-linux procps git
  # the log shipper example (examples/shipping, tests/deploy/shipper_test.py)
  rsyslog
  # the tool identity tests make btrfs (with a subvolume) and xfs images on loop devices
  btrfs-progs xfsprogs
  # deployment tests: systemd-analyze verify, the Kubernetes YAML, the man page, the .deb
  systemd python3-yaml groff-base dpkg-dev lintian
  # the collector's metrics page: promtool and the Python client's parsers
  prometheus python3-prometheus-client
  # the container test (tests/deploy/container_test.sh; rootful, images built locally): runc
  # because crun refuses hybrid cgroup hosts, catatonit as the pause process of podman's pods
  podman runc catatonit
  # benchmarks (side by side; perf traces the phases of a launch)
  bubblewrap firejail hyperfine linux-perf
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
