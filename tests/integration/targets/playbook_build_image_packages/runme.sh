#!/usr/bin/env bash
# playbooks/build_image.yml with packages and a provisioning playbook, against the lab: after the install the
# installed system boots once as <name>-build, is reached over SSH once its console shows login:, gets its
# packages with pkg_add from the install server's package directory and the playbook run against it, is sealed
# again and halted (halt -p; vmd shows it stopped), then the image is compacted and described: its manifest
# lists the packages pkg_info reports, by name and version. A package pkg_add cannot find fails the build,
# leaving nothing at the image's path and no build VM. A layer on the image (build_image_base) is a qcow2 overlay
# booted once for another package, kept on its base (its manifest names the chain with each layer's inputs, and its
# build VM lists the base's packages too: they are on the base's disk) or flattened; the base, forced to rebuild
# while the layer exists, is refused naming it. The build boot's console transcript shows pkg_add's work (written to
# the guest's /dev/console). install_server publishes packages in a directory httpd lists (only it), so a layer names
# a stem. A throwaway build copies files out of a layer and leaves nothing.
set -eux
here=$(dirname "$(readlink -f "$0")")
# a short name: ssh control sockets live in the lab root (a unix socket path has at most 104 bytes)
. "$here/../setup_lab/files/lab_host.sh" bip
lab net-check || exit 0   # (77) no network namespaces here: the build VM could not be reached
ssh-keygen -q -t ed25519 -N '' -C build@lab -f "$L/id_ed25519"
# the install server publishes package files of the mirror (install_server_packages) in its package directory,
# pub/OpenBSD/<release>/packages/<arch>/ in the docroot, which httpd lists (and no other directory)
# (one flavor of vim only: the stem vim names one package there, where the mirror has two)
packages=$(python3 -c 'import glob, json, sys
print(json.dumps({"install_server_packages": sorted(p for p in glob.glob(sys.argv[1] + "/*.tgz") if "gtk3" not in p)}))' \
    "$L/mirror/7.8/packages/amd64")
# a file name that is no package name: refused naming the variable and the rule, before httpd.conf is written
if ansible-playbook -i "$here/inventory.yml" "$COLL/playbooks/host.yml" -e '{"install_server_packages": ["/tmp/rsync.tgz"]}' >"$L/host.log" 2>&1; then
    echo "install_server took a package file without a version" >&2; exit 1
fi
grep -q 'install_server_packages: \\"/tmp/rsync.tgz\\" refused; must be the absolute path on the host of a package file named' "$L/host.log" \
    || { cat "$L/host.log"; exit 1; }
[ ! -e "$L/etc/httpd.conf" ]
ansible-playbook -i "$here/inventory.yml" "$COLL/playbooks/host.yml" -e "$packages" >"$L/host.log" 2>&1 || { cat "$L/host.log"; exit 1; }
pkgdir=$L/var/www/htdocs/pub/OpenBSD/7.8/packages/amd64
[ "$(stat -c %a "$pkgdir/rsync-3.4.1.tgz")" = 644 ] && [ "$(stat -c %a "$pkgdir")" = 755 ]
grep -q '^	location "/pub/OpenBSD/7.8/packages/amd64/" {$' "$L/etc/httpd.conf"
ftp -o - http://127.0.0.1/pub/OpenBSD/7.8/packages/amd64/ | grep -q '<a href="rsync-3.4.1.tgz">'
! ftp -o - http://127.0.0.1/pub/OpenBSD/7.8/amd64/ 2>/dev/null

image=$L/var/vmm/base.qcow2
manifest=$image.manifest.json
play() { ansible-playbook -i "$here/inventory.yml" "$COLL/playbooks/build_image.yml" "$@" 2>&1 | tee "$L/play.log"; return "${PIPESTATUS[0]}"; }
recap() { grep -E '^labhost +:' "$L/play.log"; }
get() { python3 -c 'import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2].split(":"):
    value = value[int(key)] if isinstance(value, list) else value[key]
print(value if isinstance(value, str) else json.dumps(value, sort_keys=True))' "$1" "$2"; }

# 1. a base image with packages (a full name: fetched directly) and the provisioning playbook
play -e '{"build_image_packages": ["rsync-3.4.1"]}' -e "build_image_provision_playbook=$here/provision.yml"
recap | grep -q ' failed=0 '
# pkg_add ran on the build VM and fetched from the install server: rsync and its dependency, in the guest's
# package database, in the lab's record of pkg_add and in httpd's log
guest=$L/guests/base-build
[ "$(ls "$guest/var/db/pkg")" = "$(printf 'rsync-3.4.1\nxxhash-0.8.3')" ]
grep -q ' rsync-3.4.1 http://100\.64\.[0-9.]*/pub/OpenBSD/7.8/packages/amd64/rsync-3.4.1.tgz$' "$guest/lab/pkg_add.log"
grep -q '"GET /pub/OpenBSD/7.8/packages/amd64/xxhash-0.8.3.tgz HTTP/1.1" 200' "$L/var/log/httpd.log"
# the provisioning playbook ran on it, with the image's name and release
[ "$(cat "$guest/etc/provisioned")" = "base 7.8/amd64" ]
# the build VM booted the installed system, showed login:, and halted by itself (no forced stop)
grep -q 'login: ' "$L/lab/console/base-build.log"
# the build boot's console transcript, named by the manifest: the boot, then pkg_add's work, which the build
# VM wrote to /dev/console (com0, the VM's tty: sys/dev/cons.c cnwrite)
transcript=$(get "$manifest" build_console_log)
[ "$transcript" = "$image.build.log" ] && [ "$(stat -c %a "$transcript")" = 600 ]
python3 - "$transcript" <<'PY'
import sys
text = open(sys.argv[1]).read()
login, added, dependency = text.find('login: '), text.find('rsync-3.4.1: ok\n'), text.find('xxhash-0.8.3: ok\n')
assert -1 < login < dependency < added, text[-2000:]
assert text.find('build_image: pkg_add -I rsync-3.4.1') < dependency, text[-2000:]
PY
# sealed again before the halt: /etc/rc made host keys at this boot (the install left none); they are gone
[ -z "$(find "$guest/etc/ssh" -name 'ssh_host_*' -type f)" ]
grep -q 'Accepted publickey for root' "$guest/lab/sshd.log"
# gone: no build VM in vmd or vm.conf, its address out of the install clients
! vmctl status | grep -q ' base-build$'
! grep -q 'base-build' "$L/etc/vm.conf"
[ -z "$(pfctl -a openbsd-vmm -t vmm_install_clients -T show)" ]
# the manifest: the packages pkg_info reports, by name and version; the packages and playbook as inputs
[ "$(get "$manifest" packages)" = '[{"flavor": "", "name": "rsync", "package": "rsync-3.4.1", "version": "3.4.1"}, {"flavor": "", "name": "xxhash", "package": "xxhash-0.8.3", "version": "0.8.3"}]' ]
[ "$(get "$manifest" inputs:packages)" = '["rsync-3.4.1"]' ]
[ "$(get "$manifest" inputs:provision_playbook)" = "$(sha256sum "$here/provision.yml" | cut -d' ' -f1)" ]
[ "$(stat -c %a "$image")" = 444 ]
[ ! -e "$L/var/vmm/.base.qcow2.build" ]

# 1b. a layer on the image: a qcow2 overlay of it booted as dev-build, another package added; kept as a chain
# of two (vmd opens at most 4); its manifest names the chain from the base up, each layer with its inputs
base_sum=$(sha256sum "$image" | cut -d' ' -f1)
layer=$L/var/vmm/dev.qcow2
play -e "build_image_path=$layer" -e "build_image_base=$image" -e '{"build_image_packages": ["vim-9.1.1265-no_x11"]}'
recap | grep -q ' failed=0 '
grep -q "$layer: OpenBSD 7.8/amd64, sha256 .* (layer on $image, built now)" "$L/play.log"
[ "$(sha256sum "$image" | cut -d' ' -f1)" = "$base_sum" ]
[ "$(qemu-img info --output=json "$layer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["backing-filename"])')" = "$image" ]
qemu-img check -q "$layer"
[ "$(stat -c %a "$layer")" = 444 ]
[ "$(get "$layer.manifest.json" layers | python3 -c 'import json,sys; print([l["image"] for l in json.load(sys.stdin)])')" = "['$image', '$layer']" ]
[ "$(get "$layer.manifest.json" layers | python3 -c 'import json,sys; l = json.load(sys.stdin); print(l[0]["sha256"], l[0]["inputs"]["packages"], l[1]["inputs"]["packages"], l[1]["inputs"]["base"]["sha256"])')" = "$base_sum ['rsync-3.4.1'] ['vim-9.1.1265-no_x11'] $base_sum" ]
[ "$(get "$layer.manifest.json" layers:1:sha256)" = "$(sha256sum "$layer" | cut -d' ' -f1)" ]
# the base's packages are on its disk: the layer's build VM lists them with its own
[ "$(get "$layer.manifest.json" packages | python3 -c 'import json,sys; print(" ".join(p["package"] for p in json.load(sys.stdin)))')" = "rsync-3.4.1 vim-9.1.1265-no_x11 xxhash-0.8.3" ]
[ "$(get "$layer.manifest.json" packages | python3 -c 'import json,sys; print([p for p in json.load(sys.stdin) if p["name"] == "vim"][0]["flavor"])')" = no_x11 ]
! vmctl status | grep -q ' dev-build$'
# again: nothing changes
layer_sums=$(sha256sum "$layer" "$layer.manifest.json")
play -e "build_image_path=$layer" -e "build_image_base=$image" -e '{"build_image_packages": ["vim-9.1.1265-no_x11"]}'
recap | grep -q ' changed=0 .* failed=0 '
[ "$(sha256sum "$layer" "$layer.manifest.json")" = "$layer_sums" ]
# the base, rebuilt by force while the layer is built on it: refused, naming the layer
if play -e '{"build_image_packages": ["xxhash-0.8.3"]}' -e build_image_force_rebuild=true; then
    echo "build_image.yml rebuilt a base a layer is built on" >&2; exit 1
fi
grep -q "build_image_force_rebuild: $image is not rebuilt: these overlays are built on it and would be corrupted: $layer" "$L/play.log"
[ "$(sha256sum "$image" | cut -d' ' -f1)" = "$base_sum" ]
# flattened (vmctl create -i through the chain): one image without a base; built_from names the chain
flat=$L/var/vmm/flat.qcow2
play -e "build_image_path=$flat" -e "build_image_base=$image" -e build_image_flatten=true -e '{"build_image_packages": ["vim-9.1.1265-no_x11"]}'
recap | grep -q ' failed=0 '
! qemu-img info --output=json "$flat" | grep -q backing-filename
[ "$(get "$flat.manifest.json" layers | python3 -c 'import json,sys; print([l["image"] for l in json.load(sys.stdin)])')" = "['$flat']" ]
[ "$(get "$flat.manifest.json" built_from | python3 -c 'import json,sys; print([l["image"] for l in json.load(sys.stdin)])')" = "['$image']" ]
[ "$(get "$flat.manifest.json" inputs:flatten)" = true ]

# 1c. a package asked for by its stem: pkg_add finds it in the package directory's listing (PackageRepository.pm
# get_http_list), which install_server has httpd make
stem=$L/var/vmm/stem.qcow2
play -e "build_image_path=$stem" -e "build_image_base=$image" -e '{"build_image_packages": ["vim"]}'
recap | grep -q ' failed=0 '
grep -q '"GET /pub/OpenBSD/7.8/packages/amd64/ HTTP/1.1" 200' "$L/var/log/httpd.log"
[ "$(get "$stem.manifest.json" packages | python3 -c 'import json,sys; print(" ".join(p["package"] for p in json.load(sys.stdin)))')" = "rsync-3.4.1 vim-9.1.1265-no_x11 xxhash-0.8.3" ]
[ "$(get "$stem.manifest.json" inputs:packages)" = '["vim"]' ]

# 1d. a throwaway build: a layer booted on the image only for files that are copied out to the controller
# (build_image_fetch into build_image_fetch_dest, keeping their paths), then discarded: no image, no manifest,
# no build directory, no VM; a file that is not there fails the build with nothing copied and nothing left
fetched=$L/fetched
throwaway=$L/var/vmm/throwaway.qcow2
play -e "build_image_path=$throwaway" -e "build_image_base=$image" -e "build_image_provision_playbook=$here/provision.yml" \
    -e '{"build_image_fetch": ["/etc/provisioned", "/var/db/pkg/rsync-3.4.1/+CONTENTS"]}' -e "build_image_fetch_dest=$fetched"
recap | grep -q ' failed=0 '
[ "$(cat "$fetched/etc/provisioned")" = "throwaway 7.8/amd64" ]
grep -q '^@name rsync-3.4.1$' "$fetched/var/db/pkg/rsync-3.4.1/+CONTENTS"
grep -q "\"labhost: files copied to $fetched, nothing kept\"" "$L/play.log"
[ -z "$(ls -a "$L/var/vmm" | grep throwaway)" ]
! vmctl status | grep -q ' throwaway-build$'
! grep -q 'throwaway-build' "$L/etc/vm.conf"
[ -z "$(pfctl -a openbsd-vmm -t vmm_install_clients -T show)" ]
if play -e "build_image_path=$throwaway" -e "build_image_base=$image" \
        -e '{"build_image_fetch": ["/etc/motd", "/nosuch"]}' -e "build_image_fetch_dest=$L/fetched2"; then
    echo "build_image.yml copied a file that is not there" >&2; exit 1
fi
[ ! -e "$L/fetched2" ]
[ -z "$(find /tmp -maxdepth 1 -name 'build_image_fetch.*' -newer "$L/play.log")" ]
! vmctl status | grep -q ' throwaway-build$'
! grep -q 'throwaway-build' "$L/etc/vm.conf"
# a throwaway build without a base is refused before anything is made
if play -e "build_image_path=$throwaway" -e '{"build_image_fetch": ["/etc/motd"]}' -e "build_image_fetch_dest=$L/fetched3"; then
    echo "build_image.yml took a throwaway build without a base" >&2; exit 1
fi
grep -q 'build_image_fetch: a throwaway build needs build_image_base' "$L/play.log"
[ -z "$(ls -a "$L/var/vmm" | grep throwaway)" ]

# 2. again: nothing changes (the same packages and playbook are the same inputs), no build VM boots
sum_before=$(sha256sum "$image" "$manifest")
play -e '{"build_image_packages": ["rsync-3.4.1"]}' -e "build_image_provision_playbook=$here/provision.yml"
recap | grep -q ' changed=0 .* failed=0 '
[ "$(sha256sum "$image" "$manifest")" = "$sum_before" ]
# other packages are other inputs: a sealed image is refused
if play -e '{"build_image_packages": ["rsync-3.4.1", "vim-9.1.1265-no_x11"]}' -e "build_image_provision_playbook=$here/provision.yml"; then
    echo "build_image.yml kept an image built with other packages" >&2; exit 1
fi
grep -q 'is a sealed image' "$L/play.log"

# 3. a package pkg_add cannot find: the build fails naming it; nothing at the image's path, no build VM left
other=$L/var/vmm/other.qcow2
if play -e "build_image_path=$other" -e '{"build_image_packages": ["nosuch-1.0"]}'; then
    echo "build_image.yml built an image without its packages" >&2; exit 1
fi
grep -q "build_image_packages: nosuch-1.0 not installed" "$L/play.log"
grep -q "Can't find nosuch-1.0" "$L/play.log"
[ ! -e "$other" ] && [ ! -e "$other.manifest.json" ]
! vmctl status | grep -q ' other-build$'
! grep -q 'other-build' "$L/etc/vm.conf"
[ -z "$(pfctl -a openbsd-vmm -t vmm_install_clients -T show)" ]
