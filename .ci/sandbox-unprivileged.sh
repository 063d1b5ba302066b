#!/usr/bin/env bash
# Run the sandbox test suite as an ordinary (non-root) user: the sandbox must hold without root.
# Usage: .ci/sandbox-unprivileged.sh [extra pytest args]   (from any directory; venv at ./.venv)
# As root it creates the user (SANDBOX_TEST_USER, default gemsandbox) if needed, copies the
# checkout and its venv to a temporary directory that user can read, makes the base Python
# reachable (temporarily adding o+x to ancestor directories such as /root, restored on exit),
# and runs pytest there. Run as non-root it simply runs the suite in place.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEST_USER="${SANDBOX_TEST_USER:-gemsandbox}"
PYTEST_ARGS=(-q -p no:cacheprovider "$@")

if [ "$(id -u)" -ne 0 ]; then
    cd "$REPO"
    exec env PYTHONPATH="$REPO" "$REPO/.venv/bin/python" -m pytest "${PYTEST_ARGS[@]}" tests/sandbox
fi

if ! id -u "$TEST_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$TEST_USER"
fi

WORK="$(mktemp -d /tmp/gem-sandbox-ci.XXXXXX)"
RESTORE=()
cleanup() {
    local entry
    for entry in "${RESTORE[@]+"${RESTORE[@]}"}"; do
        chmod "${entry%%:*}" "${entry#*:}" || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
chmod 755 "$WORK"
mkdir "$WORK/repo"
tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude='*/__pycache__' -cf - . \
    | tar -C "$WORK/repo" -xf -
cp -a "$REPO/.venv" "$WORK/repo/.venv"
chmod -R a+rX "$WORK/repo"

# The venv's interpreter is a symlink to a base Python that may live under /root (pyenv).
BASE_PY="$(readlink -f "$WORK/repo/.venv/bin/python")"
dir="$(dirname "$BASE_PY")"
while [ "$dir" != "/" ]; do
    if ! runuser -u "$TEST_USER" -- test -x "$dir" 2>/dev/null; then
        RESTORE+=("$(stat -c %a "$dir"):$dir")
        chmod o+x "$dir"
    fi
    dir="$(dirname "$dir")"
done
if ! runuser -u "$TEST_USER" -- "$BASE_PY" -c "pass"; then
    echo "sandbox-unprivileged: $TEST_USER cannot run $BASE_PY" >&2
    exit 1
fi

cd "$WORK/repo"
runuser -u "$TEST_USER" -- env -i HOME="$WORK" PATH=/usr/local/bin:/usr/bin:/bin \
    PYTHONPATH="$WORK/repo" "$WORK/repo/.venv/bin/python" -m pytest "${PYTEST_ARGS[@]}" tests/sandbox
