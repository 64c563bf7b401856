#!/bin/bash
# tests/packaging/guest-check.sh - the package, checked from inside a clean,
# booted Debian system (systemd as PID 1) into which scripts/test-deb.sh has
# installed synapserve_*.deb with apt.
#
# Run at the end of the boot by synapserve-pkgtest.service. Each check prints
# and appends to $RESULTS one line: "PASS <name>", "FAIL <name>: <why>" or
# "SKIP <name>: <why>"; "INFO <name>: ..." lines carry figures for the report.
# The journal and the details of every check go to $OUT for the host to keep.
# The last line of $RESULTS is "RESULT: PASS" or "RESULT: FAIL".
set -euo pipefail

OUT=${OUT:-/results}
RESULTS=$OUT/results.txt
DETAILS=$OUT/details.log
PKGDIR=${PKGDIR:-/root/pkgtest}   # install/synapserve_*.deb, upgrade/synapserve_*.deb
UNIT=synapserve.service
ADMIN=http://127.0.0.1:9180
SITE=/etc/synapserve/50-pkgtest.toml
UPSTREAM_DIR=/srv/pkgtest

mkdir -p "$OUT"
: >"$RESULTS"
: >"$DETAILS"
failed=0
tmp=$(mktemp)

log() { printf '%s\n' "$*" | tee -a "$RESULTS"; }
note() { printf '%s\n' "$*" >&2; }   # into the check's details

# run NAME FUNCTION: one check, in a subshell with `set -e` in force, so that
# any failing command fails the check; its output goes to $DETAILS.
run() {
	local name=$1 rc
	shift
	set +e
	(
		set -e
		"$@"
	) >"$tmp" 2>&1
	rc=$?
	set -e
	{
		printf '\n==== %s (exit %d)\n' "$name" "$rc"
		cat "$tmp"
	} >>"$DETAILS"
	if [ "$rc" -eq 0 ]; then
		log "PASS $name"
	elif [ "$rc" -eq 77 ]; then
		log "SKIP $name: $(tail -n 1 "$tmp")"
	else
		failed=1
		log "FAIL $name: $(tail -n 1 "$tmp")"
	fi
}

# ---- helpers ---------------------------------------------------------------------

# Every request has a deadline: a server that accepts and never answers must
# fail a check, not hang the test (a later --max-time overrides this one).
curl() { command curl --max-time 10 "$@"; }

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$end" ]; then
			note "timed out waiting for: $*"
			return 1
		fi
		sleep 0.2
	done
}

mainpid() { systemctl show --value -p MainPID "$UNIT"; }

status_of() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$@" || true; }
body_of() { curl -s --max-time 5 "$@"; }

# metric NAME [LABELS]: the value of one sample from /metrics.
metric() {
	local name=$1
	if [ -n "${2:-}" ]; then name+="{$2}"; fi
	curl -s --max-time 5 "$ADMIN/metrics" |
		awk -v n="$name" '$1 == n { print $2; found = 1 } END { exit !found }'
}
metric_is() { awk -v a="$(metric "$1" "${3:-}")" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 == b + 0) }'; }
serves_upstream() { [ "$(body_of http://127.0.0.1/)" = "hello from the pkgtest upstream" ]; }
journal_has() { journalctl -u "$UNIT" --no-pager -o cat | grep -- "$1" >/dev/null; }
reloads_ok() { metric synapserve_config_reloads_total 'result="success"' | cut -d. -f1; }
reloads_above() { [ "$(reloads_ok)" -gt "$1" ]; }

# expect WHAT ACTUAL EXPECTED: a comparison that says what it saw.
expect() {
	if [ "$2" != "$3" ]; then
		note "$1: got '$2', expected '$3'"
		return 1
	fi
}

# fails COMMAND...: COMMAND must fail (`! cmd` would not trip `set -e`).
fails() {
	if "$@"; then
		note "should have failed: $*"
		return 1
	fi
}

# write_site CONTENT: save a site file the way editors do (new file, rename).
write_site() {
	printf '%s\n' "$1" >"$SITE.tmp"
	mv "$SITE.tmp" "$SITE"
}

GOOD_SITE='[upstreams.pkgtest]
servers = [{ address = "127.0.0.1:8000" }]

[sites.pkgtest]
hosts = ["*"]
[[sites.pkgtest.routes]]
path = "/"
upstream = "pkgtest"'

# ---- checks: the installed package -------------------------------------------------

check_service_active() {
	systemctl is-enabled "$UNIT"
	systemctl is-active "$UNIT"
	[ "$(systemctl show --value -p Type "$UNIT")" = notify ]
}

check_runs_as_synapserve() {
	local pid
	pid=$(mainpid)
	[ "$pid" -gt 0 ]
	ps -o user=,group=,cmd= -p "$pid"
	[ "$(ps -o user= -p "$pid")" = synapserve ]
	[ "$(ps -o group= -p "$pid")" = synapserve ]
	# only CAP_NET_BIND_SERVICE (bit 10), no new privileges, a seccomp filter
	grep -E '^(Cap(Eff|Prm|Bnd|Amb)|NoNewPrivs|Seccomp):' "/proc/$pid/status"
	grep -q '^CapEff:[[:space:]]*0000000000000400$' "/proc/$pid/status"
	grep -q '^CapBnd:[[:space:]]*0000000000000400$' "/proc/$pid/status"
	grep -q '^NoNewPrivs:[[:space:]]*1$' "/proc/$pid/status"
	grep -q '^Seccomp:[[:space:]]*2$' "/proc/$pid/status"
	log "INFO service limits: $(grep 'Max open files' "/proc/$pid/limits" | tr -s ' ')"
}

check_user_and_files() {
	getent passwd synapserve
	IFS=: read -r _ _ uid _ _ home shell < <(getent passwd synapserve)
	[ "$uid" -lt 1000 ]
	[ "$home" = /nonexistent ]
	[ "$shell" = /usr/sbin/nologin ]
	getent group synapserve
	[ -x /usr/bin/synapserve ]
	python3 -c 'import synapserve._native, synapserve.native; print(synapserve._native.__file__)'
	dpkg-query -W -f='${Conffiles}\n' synapserve | tee /dev/stderr | grep -q ' /etc/synapserve/synapserve.toml '
	dpkg-query -W -f='${Conffiles}\n' synapserve | grep -q ' /etc/logrotate.d/synapserve '
	[ -f /lib/systemd/system/synapserve.service ]
	stat -c '%U:%G %a %n' /var/log/synapserve
	[ "$(stat -c '%U:%G %a' /var/log/synapserve)" = "synapserve:adm 2750" ]
}

check_default_config() {
	synapserve check --config-dir /etc/synapserve
	# no site yet: every request gets 404, from synapserve
	expect "GET http://127.0.0.1/ status" "$(status_of http://127.0.0.1/)" 404
	expect "GET $ADMIN/healthz status" "$(status_of "$ADMIN/healthz")" 200
	# the admin endpoint is local only
	ss -ltnH | tee /dev/stderr | grep -q '127.0.0.1:9180'
}

check_journal() {
	journalctl -u "$UNIT" --no-pager -o cat | tail -n 5
	journal_has 'serving:'
	journal_has 'running as synapserve'
}

# `synapserve version` under the unit's own sandbox: the properties of
# [Service] in the installed unit, applied to a transient one by systemd-run.
check_version_under_unit_sandbox() {
	local props=() key line out rings
	while IFS= read -r line; do
		key=${line%%=*}
		case $key in
		Type | ExecStart | ExecReload | Restart | RestartSec | KillSignal | TimeoutStopSec) continue ;;
		esac
		props+=(-p "$line")
	done < <(sed -n '/^\[Service\]/,/^\[/{/^[A-Z][A-Za-z]*=/p}' /lib/systemd/system/synapserve.service)
	note "systemd-run ${props[*]} /usr/bin/synapserve version"
	[ "${#props[@]}" -gt 20 ]
	out=$(systemd-run --quiet --wait --pipe --collect "${props[@]}" /usr/bin/synapserve version)
	printf '%s\n' "$out"
	expect "synapserve version under the unit's sandbox" "$(grep '^engine:' <<<"$out")" "engine: io_uring"
	log "INFO version under the unit's sandbox: $(grep -E '^(engine|kernel):' <<<"$out" | tr '\n' ' ')"
	# and the running service holds io_uring instances
	rings=$(find "/proc/$(mainpid)/fd" -lname 'anon_inode:\[io_uring\]' | wc -l)
	log "INFO io_uring instances held by the running service: $rings"
	[ "$rings" -gt 0 ]
}

check_security_score() {
	local out
	out=$(systemd-analyze security --no-pager "$UNIT")
	printf '%s\n' "$out"
	log "INFO systemd-analyze security: $(grep -o 'Overall exposure level for .*' <<<"$out")"
	# below 2.0 is "OK" on systemd's scale (a service without hardening is 9.6)
	awk '/Overall exposure level/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) s = $i }
	     END { exit !(s != "" && s + 0 < 2.0) }' <<<"$out"
}

# ---- checks: configuration changes without a restart -------------------------------

start_upstream() {
	mkdir -p "$UPSTREAM_DIR"
	printf 'hello from the pkgtest upstream\n' >"$UPSTREAM_DIR/index.html"
	systemd-run --quiet --unit=pkgtest-upstream -p DynamicUser=yes \
		python3 -m http.server 8000 --bind 127.0.0.1 --directory "$UPSTREAM_DIR"
	wait_for 20 curl -sf --max-time 2 http://127.0.0.1:8000/
}

check_edit_applies() {
	local pid
	start_upstream
	pid=$(mainpid)
	write_site "$GOOD_SITE"
	wait_for 20 serves_upstream
	[ "$(mainpid)" = "$pid" ]
	body_of http://127.0.0.1/
	journal_has 'reload (watch)'
	metric synapserve_config_last_reload_successful
	metric_is synapserve_config_last_reload_successful 1
}

# A static route with compress = true under the unit's sandbox: the Brotli body
# is made in the unit's CacheDirectory (/var/cache/synapserve), owned by the
# service user, and served; then the upstream site comes back.
serves_br() {
	curl -s -o /dev/null -D - -H 'Accept-Encoding: br' http://127.0.0.1/pkg.css |
		grep -qi '^content-encoding: br'
}

static_checks() {
	if ! wait_for 20 serves_br; then
		curl -s -o /dev/null -D - -H 'Accept-Encoding: br' http://127.0.0.1/pkg.css
		ls -la /var/cache/synapserve /var/cache/synapserve/br
		return 1
	fi
	expect "identity body" "$(body_of http://127.0.0.1/pkg.css | sha256sum)" \
		"$(sha256sum </srv/pkgtest-static/pkg.css)"
	ls -l /var/cache/synapserve/br
	expect "owner of the cache" "$(stat -c %U /var/cache/synapserve/br)" synapserve
	expect "a body in the cache" "$(find /var/cache/synapserve/br -mindepth 1 -maxdepth 1 | wc -l)" 1
	curl -s "$ADMIN/metrics" | grep '^synapserve_static_'
	curl -s "$ADMIN/metrics" | grep '^synapserve_static_compressed_total{.*result="hit".*} [1-9]' >/dev/null
}

check_static_files_compressed() {
	local rc=0
	mkdir -p /srv/pkgtest-static
	for i in $(seq 1 40); do printf '.pkg%d { color: red; margin: 0 auto; }\n' "$i"; done \
		>/srv/pkgtest-static/pkg.css
	write_site '[sites.pkgtest]
hosts = ["*"]
[[sites.pkgtest.routes]]
path = "/"
static = { root = "/srv/pkgtest-static", compress = true }'
	static_checks || rc=$?
	write_site "$GOOD_SITE"
	wait_for 20 serves_upstream
	return $rc
}

# A TLS listener added by an edit: bound on 443 by the running service (its one
# capability), the key readable by the service user only, TLS served under the
# unit's sandbox; then the listener removed again.
check_tls_listener() {
	local rc=0
	install -d -m 755 /etc/synapserve/tls
	install -m 644 /usr/local/lib/synapserve-pkgtest/tls/pkgtest.pem /etc/synapserve/tls/
	install -m 640 -g synapserve /usr/local/lib/synapserve-pkgtest/tls/pkgtest.key \
		/etc/synapserve/tls/
	write_site "$GOOD_SITE
[listeners.https]
bind = \"127.0.0.1:443\"
tls = { certificates = [{ cert = \"/etc/synapserve/tls/pkgtest.pem\", key = \"/etc/synapserve/tls/pkgtest.key\" }] }"
	if wait_for 20 serves_tls; then
		curl -s --cacert /etc/synapserve/tls/pkgtest.pem --resolve pkgtest.example:443:127.0.0.1 \
			https://pkgtest.example/ | grep 'hello from the pkgtest upstream' >/dev/null || rc=1
		curl -s "$ADMIN/metrics" | grep '^synapserve_tls_handshakes_total'
		curl -s "$ADMIN/metrics" |
			grep -q '^synapserve_tls_handshakes_total{listener="https",result="success"} [1-9]' ||
			rc=1
	else
		curl -sv -k https://127.0.0.1/ 2>&1 | tail -n 20
		journalctl -u "$UNIT" --no-pager -o cat | tail -n 5
		rc=1
	fi
	write_site "$GOOD_SITE"
	wait_for 20 serves_upstream
	rm -rf /etc/synapserve/tls # ours, not the package's: purge must not find it
	return $rc
}

serves_tls() {
	[ "$(curl -sk https://127.0.0.1/)" = "hello from the pkgtest upstream" ]
}

check_broken_edit_keeps_serving() {
	local pid
	pid=$(mainpid)
	write_site "${GOOD_SITE/upstream = \"pkgtest\"/upstream = \"pkgtset\"}"
	wait_for 20 metric_is synapserve_config_last_reload_successful 0
	curl -s "$ADMIN/metrics" | grep '^synapserve_config_'
	serves_upstream
	[ "$(mainpid)" = "$pid" ]
	journal_has 'refused, running config kept'
	journalctl -u "$UNIT" --no-pager -o cat | grep 'refused' | tail -n 1
	fails synapserve check --config-dir /etc/synapserve
	# and fixed again
	write_site "$GOOD_SITE"
	wait_for 20 metric_is synapserve_config_last_reload_successful 1
	serves_upstream
}

check_systemctl_reload() {
	local pid before
	pid=$(mainpid)
	before=$(reloads_ok)
	systemctl reload "$UNIT"
	wait_for 10 reloads_above "$before"
	[ "$(mainpid)" = "$pid" ]
	systemctl is-active "$UNIT"
	journal_has 'reload (signal)'
	serves_upstream
}

check_reload_commands() {
	local before
	before=$(reloads_ok)
	synapserve reload
	curl -s --max-time 10 -X POST "$ADMIN/reload" | tee /dev/stderr | grep '"ok": *true' >/dev/null
	[ "$(reloads_ok)" -ge $((before + 2)) ]
	synapserve status | tee /dev/stderr | grep '127.0.0.1:8000' >/dev/null
	curl -s "$ADMIN/status" | python3 -c 'import json, sys; json.load(sys.stdin)'
}

check_access_log_and_logrotate() {
	local pid log=/var/log/synapserve/access.log
	pid=$(mainpid)
	curl -s -o /dev/null http://127.0.0.1/before-rotate
	wait_for 10 grep -q 'GET /before-rotate' "$log"
	stat -c '%U:%G %a %n' "$log"
	[ "$(stat -c %U "$log")" = synapserve ]
	logrotate -v -f /etc/logrotate.d/synapserve
	[ -f "$log.1" ]
	journal_has 'reopening log files'
	curl -s -o /dev/null http://127.0.0.1/after-rotate
	wait_for 10 grep -q 'GET /after-rotate' "$log"
	fails grep -q 'GET /after-rotate' "$log.1"
	[ "$(mainpid)" = "$pid" ]
}

check_metrics() {
	local m
	m=$(curl -s --max-time 5 "$ADMIN/metrics")
	grep -E '^synapserve_(requests_total|config_reloads_total|upstream_server_up)' <<<"$m"
	grep -q '^synapserve_requests_total{.*} [1-9]' <<<"$m"
	grep -q '^synapserve_config_last_reload_successful 1' <<<"$m"
}

check_systemctl_restart() {
	local pid t0
	pid=$(mainpid)
	t0=$(date +%s%N)
	systemctl restart "$UNIT"
	log "INFO systemctl restart (drain, stop, start, READY=1) took $((($(date +%s%N) - t0) / 1000000)) ms"
	systemctl is-active "$UNIT"
	[ "$(mainpid)" != "$pid" ]
	wait_for 20 serves_upstream
	journal_has 'stopping (signal)'
	journal_has 'stopped'
}

# ---- checks: upgrade, remove, purge, install on a running system ----------------------

apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" </dev/null
}

check_upgrade_keeps_conffile() {
	local pid new
	new=$(echo "$PKGDIR"/upgrade/synapserve_*.deb)
	pid=$(mainpid)
	printf '# pkgtest: edited by the operator\n' >>/etc/synapserve/synapserve.toml
	apt_install "$new"
	dpkg-query -W -f='${Version}\n' synapserve | tee /dev/stderr | grep -q '+pkgtest'
	grep -q '^# pkgtest: edited by the operator$' /etc/synapserve/synapserve.toml
	fails ls /etc/synapserve/*.dpkg-* 2>/dev/null
	systemctl is-active "$UNIT"
	[ "$(mainpid)" != "$pid" ]
	wait_for 20 serves_upstream
}

check_remove_stops() {
	DEBIAN_FRONTEND=noninteractive apt-get remove -y synapserve </dev/null
	fails systemctl is-active "$UNIT"
	[ "$(status_of http://127.0.0.1/)" = 000 ]
	[ ! -e /usr/bin/synapserve ]
	[ ! -e /lib/systemd/system/synapserve.service ]
	# removed, not purged: configuration, logs and user stay
	[ -f /etc/synapserve/synapserve.toml ]
	[ -d /var/log/synapserve ]
	getent passwd synapserve
}

check_purge() {
	local st
	DEBIAN_FRONTEND=noninteractive apt-get purge -y synapserve </dev/null
	[ ! -e /etc/synapserve/synapserve.toml ]
	[ ! -e /etc/logrotate.d/synapserve ]
	[ ! -e /var/log/synapserve ]
	[ ! -e /etc/systemd/system/multi-user.target.wants/synapserve.service ]
	[ ! -e /var/lib/systemd/deb-systemd-helper-enabled/synapserve.service ]
	st=$(dpkg-query -W -f='${db:Status-Status}' synapserve 2>/dev/null || true)
	[ -z "$st" ] || [ "$st" = not-installed ]
	# what stays: the system user (Debian practice) and the file the
	# administrator added, which dpkg does not own
	getent passwd synapserve
	ls -A /etc/synapserve
	[ "$(ls -A /etc/synapserve)" = 50-pkgtest.toml ]
}

check_install_starts_service() {
	apt_install "$(echo "$PKGDIR"/install/synapserve_*.deb)"
	# no reboot: postinst enabled and started it
	systemctl is-enabled "$UNIT"
	systemctl is-active "$UNIT"
	[ "$(ps -o user= -p "$(mainpid)")" = synapserve ]
	[ "$(stat -c '%U:%G %a' /var/log/synapserve)" = "synapserve:adm 2750" ]
	wait_for 20 serves_upstream
}

# ---- main ----------------------------------------------------------------------------

echo "guest started" >"$OUT/started"
log "INFO kernel $(uname -r), $(systemd --version | head -n 1), virtualization $(systemd-detect-virt || true)"
log "INFO installed: $(dpkg-query -W -f='${Package} ${Version}\n' synapserve python3 liburing2 \
	python3-cffi-backend python3-watchdog python3-prometheus-client | tr '\n' ',' | sed 's/,$//')"
systemctl --failed --no-legend --plain >>"$DETAILS" || true

run service-enabled-and-active check_service_active
run runs-as-synapserve-with-one-capability check_runs_as_synapserve
run user-conffiles-log-dir check_user_and_files
run default-config-valid-and-404 check_default_config
run journal-has-logs check_journal
run version-under-unit-sandbox-io_uring check_version_under_unit_sandbox
run systemd-analyze-security check_security_score
run edit-applies-without-restart check_edit_applies
run broken-edit-keeps-serving check_broken_edit_keeps_serving
run systemctl-reload check_systemctl_reload
run synapserve-reload-and-post-reload check_reload_commands
run access-log-and-logrotate-reopen check_access_log_and_logrotate
run metrics check_metrics
run static-files-compressed-under-unit check_static_files_compressed
run tls-listener-under-unit check_tls_listener
run systemctl-restart check_systemctl_restart
run upgrade-keeps-edited-conffile-and-restarts check_upgrade_keeps_conffile
run remove-stops-service check_remove_stops
run purge-removes-package-files check_purge
run install-on-running-system-starts-service check_install_starts_service

journalctl -b --no-pager -o short-monotonic >"$OUT/journal.txt" 2>&1 || true
rm -f "$tmp"
if [ "$failed" -eq 0 ]; then log "RESULT: PASS"; else log "RESULT: FAIL"; fi
sync
