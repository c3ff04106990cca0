# Sourced by scripts/demo and scripts/test: make (or reuse) the project's virtual
# environment and install synack into it with the extras named in $1.
#
# A virtual environment, never the system Python: Debian 12 and other distributions
# refuse `pip install` into their own Python (PEP 668), and a project's packages do
# not belong there anyway. Where the distribution ships Python without `ensurepip`
# (Debian's python3-venv not installed), the environment is made without pip and
# the system's pip installs into it; failing that, one line says what to install.

VENV="${SYNACK_VENV:-.venv}"

synack_venv() {
    local extras="$1"
    if [ ! -x "$VENV/bin/python" ]; then
        if ! python3 -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            python3 -m venv --without-pip "$VENV" || {
                echo "synack: python3 cannot make a virtual environment; install python3-venv (Debian/Ubuntu) and run this again" >&2
                exit 1
            }
        fi
    fi
    local pip=("$VENV/bin/python" -m pip)
    if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        # No pip inside: let the system's pip (22.3 or newer) install into the environment.
        pip=(python3 -m pip --python "$VENV/bin/python")
        "${pip[@]}" --version >/dev/null 2>&1 || {
            echo "synack: no pip to install with; install python3-venv or python3-pip and run this again" >&2
            exit 1
        }
    fi
    "${pip[@]}" install --quiet --disable-pip-version-check -e ".${extras}"
}
