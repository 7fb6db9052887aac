#!/usr/bin/env bash
# CI step for the packages: build both, install the .deb with dpkg -i on this machine, run the
# installed `mailjail --version` and `mailjail config check`, verify the systemd unit, check that
# a changed conffile survives a reinstall, inspect the .rpm with rpm -qpl, run the test suite once
# under the shipped Node 24, and purge the package again. Runs as root (CI is root).
# MAILJAIL_CI_SKIP_SHIPPED_NODE_TESTS=1 skips the test run under the shipped Node (the older name
# MAILJAIL_CI_SKIP_NODE22_TESTS works too); MAILJAIL_CI_KEEP=1 keeps the package installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(node -p 'require("./package.json").version')
DEB=packaging/out/mailjail_${VERSION}_amd64.deb
RPM=packaging/out/mailjail-${VERSION}-1.x86_64.rpm
ok=0
pass() { ok=$((ok + 1)); echo "packaging ok: $*"; }
die() { echo "packaging FAILED: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (dpkg -i)"
bash packaging/build.sh
pass "build.sh built $(basename "$DEB") ($(du -h "$DEB" | cut -f1)) and $(basename "$RPM") ($(du -h "$RPM" | cut -f1))"

# --- .deb -------------------------------------------------------------------------------------
# (output captured first: grep -q closing the pipe early would fail the producer under pipefail)
info=$(dpkg-deb --info "$DEB")
grep -q 'Depends: ipset, iptables | nftables' <<<"$info" || die ".deb Depends"
contents=$(dpkg-deb --contents "$DEB")
grep -q ' ./usr/lib/mailjail/node/bin/node$' <<<"$contents" || die ".deb has no Node runtime"

# Whatever happens below, leave the machine as it was (unless asked to keep the package).
daemon=
cleanup() {
  [ -z "$daemon" ] || kill -KILL "$daemon" 2>/dev/null || true
  [ "${MAILJAIL_CI_KEEP:-0}" = 1 ] || dpkg --purge mailjail >/dev/null 2>&1 || true
}
trap cleanup EXIT
dpkg -i "$DEB" >/dev/null || die "dpkg -i $DEB"
pass "dpkg -i"
got=$(mailjail --version) || die "mailjail --version failed"
[ "$got" = "$VERSION" ] || die "mailjail --version printed '$got', expected '$VERSION'"
node_v=$(/usr/lib/mailjail/node/bin/node --version)
[[ "$node_v" == v24.* ]] || die "shipped node is $node_v, expected the 24 LTS"
pass "mailjail --version = $got (on Node $node_v)"
# CI has libsystemd-dev: the package must carry the sd-journal binding, and say so.
grep -qx 'journald-reader sd-journal binding (build/sdjournal.node)' /usr/lib/mailjail/BUILDINFO || die "BUILDINFO: $(cat /usr/lib/mailjail/BUILDINFO)"
[ ! -e /usr/lib/mailjail/node_modules/pino-pretty ] || die "pino-pretty (a dev dependency) is in the package"
pass "BUILDINFO: $(paste -sd ';' /usr/lib/mailjail/BUILDINFO); no dev dependencies"
mailjail config check || die "mailjail config check (installed default config)"
pass "mailjail config check"
[ -d /var/lib/mailjail ] && [ "$(stat -c %a /var/lib/mailjail)" = 750 ] || die "/var/lib/mailjail missing or not 0750"
dpkg-query -W -f='${Conffiles}\n' mailjail | grep -q '/etc/mailjail/mailjail.yaml' || die "mailjail.yaml is not a conffile"
echo '# local change kept across upgrades' >> /etc/mailjail/mailjail.yaml
dpkg -i "$DEB" >/dev/null || die "reinstall"
grep -q '^# local change kept across upgrades' /etc/mailjail/mailjail.yaml || die "a reinstall overwrote the admin's config"
pass "conffile kept across a reinstall"
# The installed daemon runs (prod-only node_modules, shipped rules and runtime): dry-run firewall,
# a loopback syslog listener, the control socket in a temp dir.
tmp=$(mktemp -d)
port=$(/usr/lib/mailjail/node/bin/node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
cat > "$tmp/mailjail.yaml" <<YAML
state: { dir: $tmp/state }
sources:
  smoke: { type: syslog-tcp, listen: "127.0.0.1:$port", allow: [127.0.0.0/8] }
policies:
  auth: {}
firewall: { backend: dry-run }
metrics: { enabled: false }
control: { socket: $tmp/control.sock }
YAML
mailjail run --dry-run -c "$tmp/mailjail.yaml" >"$tmp/out.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do mailjail status --socket "$tmp/control.sock" >/dev/null 2>&1 && break; sleep 0.1; done
mailjail ban 192.0.2.44 --for 1h --socket "$tmp/control.sock" >/dev/null || { cat "$tmp/out.log"; die "installed mailjail run: ban"; }
mailjail bans --json --socket "$tmp/control.sock" | grep -q '"target":"192.0.2.44"' || die "installed mailjail run: bans"
kill -TERM "$daemon"
wait "$daemon" || die "installed mailjail run did not stop with exit code 0"
daemon=
rm -rf "$tmp"
pass "installed mailjail run: ban, bans, SIGTERM → 0"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /lib/systemd/system/mailjail.service || die "systemd-analyze verify"
  score=$(systemd-analyze security --offline=true /lib/systemd/system/mailjail.service 2>/dev/null | sed -n 's/.*Overall exposure level for mailjail.service: \([0-9.]*\).*/\1/p')
  pass "systemd-analyze verify (exposure ${score:-?})"
else
  echo "packaging: systemd-analyze not found, unit not verified" >&2
fi

# --- .rpm -------------------------------------------------------------------------------------
list=$(rpm -qpl "$RPM" 2>/dev/null)
for f in /usr/bin/mailjail /usr/lib/mailjail/node/bin/node /usr/lib/mailjail/dist/src/cli/main.js \
         /usr/lib/mailjail/rules /etc/mailjail/mailjail.yaml /etc/mailjail/conf.d \
         /usr/lib/systemd/system/mailjail.service /var/lib/mailjail; do
  grep -qx "$f" <<<"$list" || die ".rpm lacks $f"
done

conf=$(rpm -qp --configfiles "$RPM" 2>/dev/null)
grep -qx /etc/mailjail/mailjail.yaml <<<"$conf" || die ".rpm config files"
reqs=$(rpm -qp --requires "$RPM" 2>/dev/null)
grep -q '(iptables or nftables)' <<<"$reqs" || die ".rpm Requires"
pass "rpm -qpl: $(wc -l <<<"$list") files, config(noreplace), requires ipset and iptables|nftables"

# --- the test suite once under the shipped Node 24 ---------------------------------------------
if [ "${MAILJAIL_CI_SKIP_SHIPPED_NODE_TESTS:-${MAILJAIL_CI_SKIP_NODE22_TESTS:-0}}" != 1 ]; then
  /usr/lib/mailjail/node/bin/node test/run.mjs || die "test suite under the shipped $node_v"
  pass "test suite under Node $node_v"
fi

if [ "${MAILJAIL_CI_KEEP:-0}" != 1 ]; then
  dpkg --purge mailjail >/dev/null
  [ ! -e /usr/bin/mailjail ] && [ ! -e /etc/mailjail ] && [ ! -e /var/lib/mailjail ] || die "purge left files behind"
  pass "dpkg --purge removes everything"
fi
echo "packaging checks: $ok ok"
