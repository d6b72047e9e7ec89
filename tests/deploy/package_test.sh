#!/usr/bin/env bash
# `cmake --install` into a DESTDIR puts the binary, the systemd units (naming the installed
# binary), the schema and the manifest reference, the examples, the man page and the bash
# completion in place; `cpack -G DEB` builds a .deb whose `dpkg-deb -c` lists the same files and
# whose Depends names the package of every library the binary links and the packages the README
# lists (Deployment), which lintian accepts without an error, and whose changelog's latest entry is
# its version. Usage: package_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

expected=(
  usr/bin/enclosure
  usr/lib/systemd/system/enclosure-collector.service
  usr/lib/systemd/system/enclosure-collector.socket
  usr/lib/systemd/system/enclosure-daemon.service
  usr/lib/systemd/system/enclosed-agent@.service
  usr/share/enclosure/manifest.schema.json
  usr/share/enclosure/events.schema.json
  usr/share/enclosure/MANIFEST.md
  usr/share/enclosure/examples/coding-agent.json
  usr/share/enclosure/examples/systemd/enclosed-agent@.service
  usr/share/enclosure/examples/systemd/enclosure-daemon.service
  usr/share/enclosure/examples/kubernetes/agent.yaml
  usr/share/enclosure/examples/kubernetes/agent-standalone.yaml
  usr/share/enclosure/examples/kubernetes/enclosure-node.yaml
  usr/share/man/man1/enclosure.1.gz
  usr/share/bash-completion/completions/enclosure
  usr/share/doc/enclosure/copyright
  usr/share/doc/enclosure/changelog.gz
)

# 1. cmake --install into a DESTDIR, prefix /usr.
root=$tmp/root
DESTDIR=$root cmake --install "$build" --prefix /usr >"$tmp/install.log" 2>&1 || {
  cat "$tmp/install.log"
  fail "cmake --install failed"
}
for f in "${expected[@]}"; do
  [ -f "$root/$f" ] || fail "cmake --install: $f is missing"
done
[ -x "$root/usr/bin/enclosure" ] && "$root/usr/bin/enclosure" --version >/dev/null ||
  fail "the installed enclosure does not run"
commands=$("$root/usr/bin/enclosure" --help 2>/dev/null || true)
for unit in "$root"/usr/lib/systemd/system/*; do
  grep -q '^ExecStart=/usr/bin/enclosure ' "$unit" || [[ $unit == *.socket ]] ||
    fail "$(basename "$unit"): ExecStart does not name /usr/bin/enclosure"
  # ... and a command the installed binary has.
  sub=$(sed -n 's|^ExecStart=/usr/bin/enclosure \([a-z]*\).*|\1|p' "$unit")
  [ -z "$sub" ] || grep -q "^  $sub " <<<"$commands" ||
    fail "$(basename "$unit"): enclosure has no command $sub"
done
# Every unit of examples/systemd is installed (ENCLOSURE_SYSTEMD_UNITS in CMakeLists.txt).
for unit in "$source_dir"/examples/systemd/*; do
  [ -f "$root/usr/lib/systemd/system/$(basename "$unit")" ] ||
    fail "cmake --install does not install $(basename "$unit") (ENCLOSURE_SYSTEMD_UNITS)"
done
# Under another prefix the units name that prefix's binary.
DESTDIR=$tmp/opt cmake --install "$build" --prefix /opt/enclosure >/dev/null 2>&1 ||
  fail "cmake --install --prefix /opt/enclosure failed"
grep -q '^ExecStart=/opt/enclosure/bin/enclosure run ' \
  "$tmp/opt/opt/enclosure/lib/systemd/system/enclosed-agent@.service" ||
  fail "installed under /opt/enclosure, enclosed-agent@.service does not name /opt/enclosure/bin/enclosure"
grep -q '^ExecStart=/opt/enclosure/bin/enclosure daemon ' \
  "$tmp/opt/opt/enclosure/lib/systemd/system/enclosure-daemon.service" ||
  fail "installed under /opt/enclosure, enclosure-daemon.service does not name /opt/enclosure/bin/enclosure"

# 2. cpack -G DEB.
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/package" >"$tmp/cpack.log" 2>&1 || {
  cat "$tmp/cpack.log"
  fail "cpack -G DEB failed"
}
deb=$(find "$tmp/package" -maxdepth 1 -name 'enclosure_*.deb' | head -1)
if [ -z "$deb" ]; then
  fail "cpack produced no enclosure_*.deb"
else
  dpkg-deb -c "$deb" | awk '{print $NF}' | sed 's|^\./||' >"$tmp/contents"
  for f in "${expected[@]}"; do
    grep -qxF "$f" "$tmp/contents" || fail "the .deb does not contain $f"
  done
  if grep -Eq '(^|/)(tests?|_CPack_Packages)/|unit_tests|kernel_tests' "$tmp/contents"; then
    fail "the .deb contains build or test files: $(grep -E 'tests?/|unit_tests' "$tmp/contents" | head -3)"
  fi
  [ "$(dpkg-deb -f "$deb" Package)" = enclosure ] || fail "Package: $(dpkg-deb -f "$deb" Package)"
  depends=$(dpkg-deb -f "$deb" Depends)
  depends_names=$(tr ',' '\n' <<<"$depends" | awk '{print $1}')
  for p in libseccomp2 libbpf1 libcap2 libboost-program-options1.74.0 libssl3 libldns3 libsystemd0; do
    grep -qxF "$p" <<<"$depends_names" || fail "Depends lacks $p: $depends"
  done
  # The README's list (the comment "# Depends: ..." and its continuation lines) is the same set,
  # but for the C and C++ runtime.
  readme_depends=$(awk '/# Depends:/ {on = 1; sub(/.*# Depends:/, ""); print; next}
                        on && /^ +# / {sub(/^ +# /, ""); print; next} {on = 0}' \
    "$source_dir/README.md" | tr ',' '\n' | awk 'NF {print $1}' | sort)
  package_depends=$(grep -vxE 'libc6|libstdc\+\+6|libgcc-s1' <<<"$depends_names" | sort)
  [ -n "$readme_depends" ] || fail "README.md has no \"# Depends:\" list"
  [ "$readme_depends" = "$package_depends" ] ||
    fail "README's Depends ($(echo $readme_depends)) differ from the package's ($(echo $package_depends))"
  # The changelog's latest entry is this version.
  version=$(dpkg-deb -f "$deb" Version)
  changelog_version=$(sed -n '1s/^enclosure (\([^)]*\)).*/\1/p' "$source_dir/packaging/debian/changelog")
  [ "$changelog_version" = "$version" ] ||
    fail "packaging/debian/changelog's latest entry is $changelog_version, the package $version"
  # lintian: no errors (warnings and notes are printed).
  if ! command -v lintian >/dev/null; then
    fail "lintian is not installed (scripts/install-deps.sh)"
  else
    lintian --fail-on error --tag-display-limit 0 "$deb" >"$tmp/lintian" 2>&1 ||
      fail "lintian reports errors: $(grep -c '^E:' "$tmp/lintian") error(s)"
    grep -E '^[EW]:' "$tmp/lintian" || true
  fi
  dpkg-deb -x "$deb" "$tmp/extracted"
  grep -q '^ExecStart=/usr/bin/enclosure run ' \
    "$tmp/extracted/usr/lib/systemd/system/enclosed-agent@.service" ||
    fail "the .deb's enclosed-agent@.service does not name /usr/bin/enclosure"
  grep -q '^ExecStart=/usr/bin/enclosure daemon ' \
    "$tmp/extracted/usr/lib/systemd/system/enclosure-daemon.service" ||
    fail "the .deb's enclosure-daemon.service does not name /usr/bin/enclosure"
  # Every library the binary links directly comes from a package that Depends names.
  ldconfig -p >"$tmp/ldconfig"
  for lib in $(objdump -p "$tmp/extracted/usr/bin/enclosure" | awk '/NEEDED/{print $2}'); do
    path=$(awk -v l="$lib" '$1 == l && /x86-64/ {print $NF; exit}' "$tmp/ldconfig")
    [ -n "$path" ] || { fail "$lib: not found by ldconfig"; continue; }
    # dpkg knows a file by the path its package ships, /lib or /usr/lib (merged /usr).
    real=$(readlink -f "$path")
    package=""
    for candidate in "$path" "$real" "${real#/usr}" "/usr${real}"; do
      package=$(dpkg -S "$candidate" 2>/dev/null | head -1 | cut -d: -f1 || true)
      [ -n "$package" ] && break
    done
    [ -n "$package" ] || { fail "$lib: no package owns $path"; continue; }
    grep -qxF "$package" <<<"$depends_names" || fail "$lib comes from $package, which Depends lacks"
  done
fi

echo "package: ${#expected[@]} files checked, $failures failure(s)"
[ "$failures" -eq 0 ]
