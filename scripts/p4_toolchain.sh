# Sourced by the scripts: finds the P4 toolchain on PATH or under $P4_PREFIX.
# p4_tool NAME prints the path of NAME, or fails quietly.
p4_tool() {
    local name=$1
    if [ -n "${P4_PREFIX:-}" ] && [ -x "$P4_PREFIX/bin/$name" ]; then
        echo "$P4_PREFIX/bin/$name"
        return 0
    fi
    command -v "$name" 2>/dev/null
}
