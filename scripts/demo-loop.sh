#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The loopback demo: xvmsg-backend and a guest (xvmsg-demo-driver) as two
# processes on this host, connected by the loopback bus.
#
#   scripts/demo-loop.sh [BINDIR]      (default build/bin; `make demo` runs it)
#
# Everything lives in a temp dir that is removed at the end: the socket, a
# 64 MiB disk image, the console socket and the backend's log.  The host side
# of the guest's console is a tiny reader (perl, from perl-base) that prints
# what the guest writes and answers it.  Exit status 0 only if every check of
# the guest passed and the backend stopped cleanly.
set -u

bin=${1:-build/bin}
backend=$bin/xvmsg-backend
driver=$bin/xvmsg-demo-driver
for p in "$backend" "$driver"; do
	if [ ! -x "$p" ]; then
		echo "demo: $p not found: run make first" >&2
		exit 2
	fi
done
if ! command -v perl >/dev/null; then
	echo "demo: perl is needed for the console reader" >&2
	exit 2
fi

dir=$(mktemp -d /tmp/xvmsg-demo-XXXXXX) || exit 1
bpid=
peer=

# shellcheck disable=SC2317  # called from the trap
cleanup() {
	[ -n "$peer" ] && kill "$peer" 2>/dev/null
	if [ -n "$bpid" ] && kill -0 "$bpid" 2>/dev/null; then
		kill -TERM "$bpid" 2>/dev/null
		sleep 0.5
		kill -KILL "$bpid" 2>/dev/null
	fi
	wait 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

# Backend log lines except the SIGUSR1 counter dumps.
log_lines() {
	grep -v -E '^[a-z]+[0-9]+\(dom[0-9]+\) mode=' "$dir/backend.log" 2>/dev/null
}

echo "xvmsg loopback demo"
echo "==================="
echo "A guest (xvmsg-demo-driver) and a backend (xvmsg-backend) run as two processes;"
echo "the backend serves a disk, a random number generator and a console."

truncate -s 64M "$dir/disk0.img" || exit 1
"$backend" --socket "$dir/loop.sock" --log-level warn --full \
	--export "disk0:blk:path=$dir/disk0.img" \
	--export rng0:rng \
	--export "con0:console:socket=$dir/con.sock" \
	</dev/null >/dev/null 2>"$dir/backend.log" &
bpid=$!

for _ in $(seq 100); do
	[ -S "$dir/loop.sock" ] && break
	if ! kill -0 "$bpid" 2>/dev/null; then
		echo "demo: the backend did not start:" >&2
		sed 's/^/  | /' "$dir/backend.log" >&2
		exit 1
	fi
	sleep 0.1
done
if [ ! -S "$dir/loop.sock" ]; then
	echo "demo: the backend did not create $dir/loop.sock" >&2
	exit 1
fi
echo
echo "backend: pid $bpid, socket $dir/loop.sock, log level warn"
echo "  disk0  blk      $dir/disk0.img (64 MiB)"
echo "  rng0   rng"
echo "  con0   console  unix socket $dir/con.sock (created when the guest attaches)"

# The host side of con0: connect once the socket exists, say hello, print the
# guest's line and answer it.
perl -MIO::Socket::UNIX -e '
	$| = 1;
	my ($path) = @ARGV;
	my $s;
	for (1 .. 400) {	# 20 s
		$s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $path) and last;
		select(undef, undef, undef, 0.05);
	}
	die "    (console reader: cannot connect to $path)\n" unless $s;
	$s->autoflush(1);
	print $s "host console ready\n";
	while (my $line = <$s>) {
		$line =~ s/[\r\n]+$//;
		print "      host side of con0 received \"$line\", answers \"hello from the host\"\n";
		print $s "hello from the host\n";
		last;
	}
' "$dir/con.sock" &
peer=$!

"$driver" --socket "$dir/loop.sock" --backend-pid "$bpid" --backend-log "$dir/backend.log"
drc=$?

# The reader has answered by the time the guest read the reply; if the guest
# never got that far, the reader is still waiting: stop it either way.
kill "$peer" 2>/dev/null
wait "$peer" 2>/dev/null
peer=

echo
echo "[*] Stop the backend with SIGTERM"
kill -TERM "$bpid"
brc=1
for _ in $(seq 100); do
	if ! kill -0 "$bpid" 2>/dev/null; then
		wait "$bpid"
		brc=$?
		break
	fi
	sleep 0.1
done
if kill -0 "$bpid" 2>/dev/null; then
	echo "    FAIL  the backend did not stop within 10 s"
else
	bpid=
	if [ "$brc" -eq 0 ]; then
		echo "    OK    the backend exited cleanly"
	else
		echo "    FAIL  the backend exited with status $brc"
	fi
fi

if [ -n "$(log_lines)" ]; then
	echo "    backend log (warnings and errors):"
	log_lines | sed 's/^/      | /'
else
	echo "    backend log: no warnings or errors"
fi

echo
if [ "$drc" -eq 0 ] && [ "$brc" -eq 0 ]; then
	echo "demo: every check passed"
	exit 0
fi
echo "demo: FAILED (guest exit status $drc, backend exit status $brc)"
exit 1
