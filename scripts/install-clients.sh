#!/usr/bin/env bash
# Installs the real client libraries the real-clients test runs
# (tests/real_clients.rs) into target/clients/: the Python SDKs pinned in
# tests/clients/requirements.txt into a venv, the AI SDK packages locked in
# tests/clients/package-lock.json into node_modules. Does nothing when the
# pins (and the interpreters) are those of the last successful install: a
# stamp file holds their hash. Stops at once, saying what to install, when
# python3, its venv module, node or npm is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pins="$root/tests/clients"
dest="$root/target/clients"
stamp="$dest/.stamp"

fail() {
  echo "error: $*" >&2
  exit 1
}

# Installs a Debian package when root with apt-get, like need_apt in test.sh.
apt_install() { # apt_install PACKAGE
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== install-clients: installing $1 with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
  fi
}

command -v python3 >/dev/null || apt_install python3
command -v python3 >/dev/null ||
  fail "the real-clients test needs python3; install it with: sudo apt-get install -y python3 python3-venv"
# Debian's python3 has venv and ensurepip only with python3-venv.
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3-venv
  python3 -c 'import venv, ensurepip' 2>/dev/null ||
    fail "python3 ($(command -v python3)) has no venv/ensurepip module; install it with: sudo apt-get install -y python3-venv"
fi
command -v node >/dev/null || apt_install nodejs
command -v node >/dev/null ||
  fail "the real-clients test needs Node.js; install it with: sudo apt-get install -y nodejs npm"
command -v npm >/dev/null || apt_install npm
command -v npm >/dev/null || fail "the real-clients test needs npm; install it with: sudo apt-get install -y npm"

# The hash covers the pin files and the interpreters they are installed for.
hash="$(
  {
    cat "$pins/requirements.txt" "$pins/package.json" "$pins/package-lock.json"
    python3 --version
    node --version
  } | sha256sum | cut -d' ' -f1
)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ] &&
  [ -x "$dest/venv/bin/python" ] && [ -d "$dest/node/node_modules" ]; then
  echo "== install-clients: target/clients is up to date with tests/clients ($hash)"
  exit 0
fi

echo "== install-clients: the pins changed or nothing is installed; installing into target/clients"
rm -rf "$dest"
mkdir -p "$dest/node"
started=$SECONDS

echo "== install-clients: Python venv ($(python3 --version)) with tests/clients/requirements.txt"
python3 -m venv "$dest/venv" || fail "python3 -m venv failed; on Debian install python3-venv"
# Every dependency is pinned, so pip need not resolve; pip check then proves
# that the pins are complete and consistent.
"$dest/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  --no-deps -r "$pins/requirements.txt" ||
  fail "pip could not install tests/clients/requirements.txt (see above)"
"$dest/venv/bin/python" -m pip check --disable-pip-version-check ||
  fail "tests/clients/requirements.txt misses or contradicts a dependency (see above): regenerate it with pip freeze"

echo "== install-clients: node_modules (Node.js $(node --version)) with npm ci from tests/clients/package-lock.json"
cp "$pins/package.json" "$pins/package-lock.json" "$dest/node/"
# The AI SDK packages declare Node >= 22 but run on 20; engine-strict stays off.
(cd "$dest/node" && npm ci --no-audit --no-fund --loglevel=error) ||
  fail "npm ci could not install tests/clients/package-lock.json (see above)"

echo "$hash" >"$stamp"
echo "== install-clients: done in $((SECONDS - started)) s, $(du -sh "$dest" | cut -f1) in target/clients"
