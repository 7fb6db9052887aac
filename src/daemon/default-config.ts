// The embedded default: what runs when /etc/mailjail/mailjail.yaml does not exist, and the text the
// packages install there (conffile). It serves one journald mail server out of the box.
export const DEFAULT_CONFIG_YAML = `# mailjail configuration. Drop-ins in /etc/mailjail/conf.d/*.yaml are merged over this file
# in name order: mappings merge key by key, lists replace. Check with: mailjail config check
# Durations: "90s", "10m", "1h", "7d" (a bare number is seconds).

logLevel: info

sources:
  # The local journal: Postfix, Dovecot, Exim... logging through journald on this host.
  journal:
    type: journald
  # A central collector for mail hosts forwarding syslog (enable in a drop-in, e.g.):
  # collector:
  #   type: syslog-tcp
  #   listen: "0.0.0.0:6514"
  #   allow: ["192.0.2.0/24", "2001:db8::/32"]

policies:
  # Failed logins on any mail service. Fields left out take their defaults (docs/daemon.md):
  # maxretry 5, findtime 10m, bantime 1h, ipv4Prefix 32, ipv6Prefix 64.
  auth:
    classes: [auth]
    escalation: {}        # on: bantime doubled per repeat offence within 30d, up to maxBantime 7d

# Never banned (CIDRs or host names); loopback and this machine's own addresses are added automatically.
allowlist: []

firewall:
  backend: ipset          # ipset | nftables | dry-run
  # ports: default the mail ports (25, 465, 587, 110, 995, 143, 993, 4190); "all" for every port

state:
  dir: /var/lib/mailjail

metrics:
  listen: "127.0.0.1:9761"

control:
  socket: /run/mailjail/control.sock
`;
