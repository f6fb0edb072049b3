#!/usr/bin/python3
"""Runs contenders on fresh pseudo-terminals, interleaved, and prints medians and ratios.

Every run gets its own pty as its controlling terminal, in the state a fresh terminal has
(cooked: echo, canonical input, output post-processing with ONLCR), like a user typing the
command in a terminal. What arrives is therefore the file with every "\n" turned into
"\r\n" (by the terminal line discipline), and is counted and hashed against exactly that.
Rounds are interleaved (A B C D, A B C D, ...) so machine noise spreads over all contenders.

Usage: driver.py SPEC.json
  SPEC: {"mode": "latency"|"throughput"|"keystroke", "rounds": N, "baseline": NAME,
         "versus": NAME or [NAMES],
         "file": PATH (throughput), "contenders": [{"name": ..., "argv": [...], "env": {...}}],
         "rss": {"name": ..., "argv": [...], "fd3": "request json"} (optional),
         "pairs": [[NAME, NAME], ...] (optional: print the ratio of their medians)}
"""

import hashlib
import json
import os
import select
import statistics
import sys
import time


def spawn_on_pty(argv, env, fd3=None):
    """Starts argv in a new session whose controlling terminal is a new (cooked) pty.

    posix_spawn (vfork-like) rather than fork: the child never holds a copy of this Python
    process, so its ru_maxrss is its own, and spawning costs less. A session leader that
    opens a terminal without O_NOCTTY gets it as its controlling terminal.
    """
    master, slave = os.openpty()
    path = os.ttyname(slave)
    actions = [(os.POSIX_SPAWN_OPEN, 0, path, os.O_RDWR, 0),
               (os.POSIX_SPAWN_DUP2, 0, 1), (os.POSIX_SPAWN_DUP2, 0, 2)]
    r3 = w3 = None
    if fd3 is not None:
        r3, w3 = os.pipe()
        actions.append((os.POSIX_SPAWN_DUP2, r3, 3))
    pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=True)
    os.close(slave)
    if w3 is not None:
        os.close(r3)
        os.write(w3, fd3.encode())
        os.close(w3)
    return pid, master


def run_once(c, want_hash=False):
    env = dict(os.environ)
    env.update(c.get("env", {}))
    t0 = time.perf_counter()
    pid, master = spawn_on_pty(c["argv"], env, c.get("fd3"))
    h = hashlib.sha256() if want_hash else None
    n = 0
    while True:
        try:
            b = os.read(master, 1 << 16)
        except OSError:  # EIO: every slave descriptor closed
            break
        if not b:
            break
        n += len(b)
        if h is not None:
            h.update(b)
    _, status, ru = os.wait4(pid, 0)
    dt = time.perf_counter() - t0
    os.close(master)
    code = os.waitstatus_to_exitcode(status)
    return dt, n, (h.hexdigest() if h else None), code, ru.ru_maxrss


def terminal_sha256(path):
    """Size and SHA-256 of the file as a cooked terminal delivers it (ONLCR)."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return n, h.hexdigest()
            b = b.replace(b"\n", b"\r\n")
            n += len(b)
            h.update(b)


def keystroke(spec):
    """Round trip of one key: through the relay, echoed by the command's terminal, back."""
    cs, rounds = spec["contenders"], spec["rounds"]
    live = []
    for c in cs:
        env = dict(os.environ)
        env.update(c.get("env", {}))
        pid, m = spawn_on_pty(c["argv"], env)
        live.append((c["name"], pid, m))
    time.sleep(1.5)
    for _, _, m in live:  # whatever the start printed
        os.set_blocking(m, False)
        try:
            while os.read(m, 1 << 16):
                pass
        except OSError:
            pass
        os.set_blocking(m, True)
    rtt = {name: [] for name, _, _ in live}
    for _ in range(rounds):
        for name, _, m in live:
            t0 = time.perf_counter()
            os.write(m, b"x")
            got = b""
            while b"x" not in got:
                r, _, _ = select.select([m], [], [], 2.0)
                if not r:
                    sys.exit(f"{name}: no echo within 2 s")
                got += os.read(m, 4096)
            rtt[name].append(time.perf_counter() - t0)
    for name, pid, m in live:
        os.write(m, b"\r\x04")
        while True:
            try:
                if not os.read(m, 1 << 16):
                    break
            except OSError:
                break
        os.waitpid(pid, 0)
        os.close(m)
    med = {k: statistics.median(v) for k, v in rtt.items()}
    base = spec.get("baseline")
    versus = spec.get("versus")
    print(f"keystroke round trip: {rounds} keys per contender, interleaved")
    for name, _, _ in live:
        line = f"  {name:<32} median {med[name]*1e6:8.1f} us"
        if base and name != base:
            added = med[name] - med[base]
            line += f"  added {added*1e6:7.1f} us"
            if versus and name != versus:
                vadded = med[versus] - med[base]
                line += f"  ({added/vadded:4.2f}x the latency {versus} adds)" if vadded > 0 else ""
        print(line)


def main():
    spec = json.load(open(sys.argv[1]))
    if spec["mode"] == "keystroke":
        return keystroke(spec)
    mode, rounds, cs = spec["mode"], spec["rounds"], spec["contenders"]
    times = {c["name"]: [] for c in cs}
    lost = {c["name"]: 0 for c in cs}
    bad_hash = {c["name"]: 0 for c in cs}
    fails = {c["name"]: 0 for c in cs}
    size, want = terminal_sha256(spec["file"]) if mode == "throughput" else (0, None)
    for c in cs:  # warm caches, check everything works
        _, _, _, code, _ = run_once(c)
        if code != 0:
            sys.exit(f"{c['name']}: exited {code} in the warm-up run: {c['argv']}")
    for _ in range(rounds):
        for c in cs:
            # Timed runs only count bytes: hashing in this reader would make it the bottleneck.
            dt, n, _, code, _ = run_once(c)
            if code != 0:
                fails[c["name"]] += 1
            times[c["name"]].append(dt)
            if mode == "throughput":
                lost[c["name"]] = max(lost[c["name"]], size - n)
    if mode == "throughput":
        for c in cs:  # one untimed run each: the exact content arrived
            _, n, digest, _, _ = run_once(c, True)
            bad_hash[c["name"]] += digest != want or n != size
    base = spec.get("baseline")
    versus = spec.get("versus") or []
    if isinstance(versus, str):
        versus = [versus]
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{mode}: {rounds} interleaved rounds, each run on its own terminal")
    for c in cs:
        k = c["name"]
        line = f"  {k:<32}"
        if mode == "latency":
            line += f" median {med[k]*1e3:8.3f} ms"
            if base:
                line += f"  {med[k]/med[base]:6.2f}x {base}"
            for v in versus:
                if k != v:
                    line += f"  {med[k]/med[v]:5.2f}x {v}"
        else:
            mibs = size / med[k] / (1 << 20)
            line += f" median {mibs:8.1f} MiB/s"
            for v in versus:
                if k != v:
                    vs = size / med[v] / (1 << 20)
                    line += f"  {mibs/vs:5.2f}x {v}"
            line += f"  lost {lost[k]} bytes" + ("" if not bad_hash[k] else "  CONTENT DIFFERS")
        if fails[k]:
            line += f"  ({fails[k]} failed runs)"
        print(line)
    for a, b in spec.get("pairs", []):
        print(f"  ratio {a} / {b}: {med[a]/med[b]:.3f}x (medians)")
    if "rss" in spec:
        # Measured by GNU time, a small C parent: a child of this Python process would report
        # Python's own high-water mark (the kernel keeps the pre-exec peak in ru_maxrss).
        r = dict(spec["rss"])
        out = f"/tmp/lpexec-bench-rss-{os.getpid()}"
        r["argv"] = ["/usr/bin/time", "-o", out, "-f", "%M"] + r["argv"]
        peaks = []
        for _ in range(5):
            run_once(r)
            peaks.append(int(open(out).read().split()[-1]))
        os.unlink(out)
        print(f"  peak RSS of {spec['rss']['name']}: {max(peaks)/1024:.1f} MiB (max of 5 runs, GNU time %M)")


if __name__ == "__main__":
    main()
