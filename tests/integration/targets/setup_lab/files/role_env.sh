# Sourced by the role targets' runme.sh (their aliases say needs/target/setup_lab, so ansible-test
# copies this target beside theirs): a fresh lab in its own root /tmp/vmm-lab-<target>.XXXXXX (two
# checkouts testing at once never share one; removed on exit), and the helpers
# the checks share.  Usage: . "$here/../setup_lab/files/role_env.sh" <target> [vmd]
# (with "vmd": vmd is started too).  Expects $here, the target's own directory.
# The lab comes with the collection itself.
LAB_BIN=$(readlink -f "${ANSIBLE_COLLECTIONS_PATH%%:*}/ansible_collections/openbsd/vmm/tests/lab/bin")
VMM_LAB_ROOT=$(mktemp -d "/tmp/vmm-lab-$1.XXXXXX")
chmod 755 "$VMM_LAB_ROOT"  # as /tmp/vmm-lab-<target> was: the doas checks run as other users
export LAB_BIN PATH="$LAB_BIN:$PATH" VMM_LAB_ROOT
trap 'lab vmd stop >/dev/null 2>&1 || true; rm -rf "$VMM_LAB_ROOT"' EXIT
lab init
if [ "${2:-}" = vmd ]; then
    lab vmd start
fi
L=$VMM_LAB_ROOT

play() { ansible-playbook -i "$here/inventory.yml" "$@" 2>&1 | tee "$L/play.log"; return "${PIPESTATUS[0]}"; }
recap() { grep -E '^labhost +:' "$L/play.log"; }
