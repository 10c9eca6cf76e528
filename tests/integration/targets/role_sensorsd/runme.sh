#!/usr/bin/env bash
# sensorsd against the lab: check mode writes nothing, converge, sensorsd's first pass runs the
# shipped alert script for each drive (one healthy, one failed) and it mails what it should,
# converge again (changed=0, no restart, no new mail), a changed limit restarts sensorsd.
set -eux
here=$(dirname "$(readlink -f "$0")")
. "$here/../setup_lab/files/role_env.sh" role_sensorsd
# a mail(1) stand-in that keeps what it is given
mkdir -p "$L/bin"
printf '#!/bin/sh\n{ echo "argv: $*"; cat; echo .; } >> "%s/mail.log"\n' "$L" > "$L/bin/mail"
chmod 755 "$L/bin/mail"
# the second disk has failed (the lab's sensor values are lab state, not settable with sysctl)
sysctl hw.sensors >/dev/null
python3 - "$L/lab/basetools/sysctl.json" <<'PY'
import json, os, sys
path = sys.argv[1]
state = json.load(open(path)) if os.path.exists(path) else {}
state["hw.sensors.sd1.drive0"] = "failed (sd1), CRITICAL"
os.makedirs(os.path.dirname(path), exist_ok=True)
json.dump(state, open(path, "w"))
PY

snapshot() { (cd "$L" && find etc -print0 | sort -z | xargs -0 ls -ld --time-style=+; rcctl ls started; cat mail.log 2>/dev/null || true); }

# 1. check mode on the fresh host: reports changes, writes nothing
snapshot > "$L/before"
play "$here/converge.yml" --check
recap | grep -vq ' changed=0 '
snapshot > "$L/after"
diff "$L/before" "$L/after"

# 2. converge: sensorsd runs, its first pass mails about both disks
play "$here/converge.yml"
recap | grep -q ' failed=0 '
rcctl check sensorsd
grep -qx "drive:command=$L/etc/sensorsd/openbsd-vmm-alert %x %t %n %s %l %2" "$L/etc/sensorsd.conf"
grep -qx "hw.sensors.cpu0.temp0:high=80C:command=$L/etc/sensorsd/openbsd-vmm-alert %x %t %n %s %l %2" "$L/etc/sensorsd.conf"
[ "$(rcctl get sensorsd flags)" = "-f $L/etc/sensorsd.conf" ]
grep -q "^argv: -s $(hostname): disk OK at boot: hw.sensors.sd0.drive0 online ops@example.org\$" "$L/mail.log"
grep -q "^argv: -s $(hostname): disk not OK: hw.sensors.sd1.drive0 failed (CRITICAL) ops@example.org\$" "$L/mail.log"
grep -qx 'status: CRITICAL' "$L/mail.log"
grep -qx 'sensor: hw.sensors.sd1.drive0' "$L/mail.log"
[ "$(grep -c '^argv:' "$L/mail.log")" = 2 ]

# 3. converge again: nothing changes, sensorsd is not restarted (no new mail)
play "$here/converge.yml"
recap | grep -q ' changed=0 .* failed=0 '
[ "$(grep -c '^argv:' "$L/mail.log")" = 2 ]

# 4. a changed limit rewrites sensorsd.conf and restarts sensorsd (its first pass mails again)
play "$here/converge.yml" -e '{"sensorsd_entries": [{"sensor": "hw.sensors.cpu0.temp0", "high": "85C"}]}'
recap | grep -q ' changed=1 .* failed=0 ' || recap | grep -q ' changed=2 .* failed=0 '
grep -q 'high=85C' "$L/etc/sensorsd.conf"
[ "$(grep -c '^argv:' "$L/mail.log")" = 4 ]

# 5. bad inputs (table in bad_inputs.yml): each refused before anything is written, naming the
#    variable and the rule; sensorsd.conf, the alert script, rc.conf.local and the mails unchanged
play "$here/bad_inputs.yml"
recap | grep -q ' failed=0 '
