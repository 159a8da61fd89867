#!/usr/bin/env bash
# Print the path of the first working Python interpreter among the versions asked for, looking on
# PATH (python3.X) and in pyenv's versions; exit 1 with a one-line reason if there is none.
#
#   scripts/find-python.sh 3.11 3.10      ->  /usr/bin/python3.11
set -uo pipefail
[ $# -gt 0 ] || { echo "usage: find-python.sh X.Y [X.Y...]" >&2; exit 2; }
works() { "$1" -c 'import sys, venv' >/dev/null 2>&1; }
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
for version in "$@"; do
    for candidate in "${PYTHON:-}" "$(command -v "python$version" 2>/dev/null)" \
                     "$pyenv_root"/versions/"$version".*/bin/"python$version"; do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        actual=$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
        if [ "$actual" = "$version" ] && works "$candidate"; then
            echo "$candidate"
            exit 0
        fi
    done
done
echo "find-python.sh: no working Python $* (looked on PATH and in $pyenv_root/versions; set PYTHON=...)" >&2
exit 1
