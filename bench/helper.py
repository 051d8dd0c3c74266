#!/usr/bin/env python3
"""Helper of bench/run (python3 standard library only).

  helper.py ports N
      N distinct free TCP ports on 127.0.0.1, one per line.
  helper.py signin GATE_URL LOGIN PATH
      Signs LOGIN in through Clearance at GATE_URL and the test OpenID provider (its
      dev-interactions login and consent forms), as a browser would, and prints the value of a
      Cookie header carrying the session (e.g. "_clearance=...").
  helper.py append RESULTS_JSONL --case C --body B --round R --wrk WRK_OUTPUT
                   [--rss GROUP=KB ...] [--cpu GROUP=SECONDS ...] [--sys GROUP=SECONDS ...] [--redis-commands N]
      Adds one measured run (wrk's BENCH_JSON line plus RSS, CPU and the number of commands
      Redis processed meanwhile) to RESULTS_JSONL.
  helper.py rate RESULTS_JSONL CASE BODY
      The median requests/s of CASE with BODY.
  helper.py paced META_JSON TARGET_RATE WRK_OUTPUT
      Adds the paced run of c (wrk's BENCH_JSON line) and its target rate to META_JSON.
  helper.py report RESULTS_JSONL META_JSON OUT_JSON
      Prints the per-round figures, the medians and the ratios, writes everything to OUT_JSON,
      and exits 1 if any case failed (non-2xx answers, socket errors, short bodies).
"""

import html.parser
import json
import socket
import statistics
import sys
import urllib.parse
import http.client

BODY_BYTES = {"1k": 1024, "1m": 1024 * 1024}
CASES = {
    "a": "upstream nginx, direct",
    "b": "nginx reverse proxy",
    "c": "Clearance reverse proxy, cache on",
    "d": "Clearance reverse proxy, cache off",
    "e": "nginx auth_request -> 200",
    "f": "nginx auth_request -> Clearance",
    "g": "Caddy forward_auth -> Clearance",
}
RATIOS = [("c/b", "c", "b"), ("d/b", "d", "b"), ("f/e", "f", "e"), ("g/e", "g", "e")]


def fail(message):
    sys.stderr.write(f"bench helper: {message}\n")
    sys.exit(1)


# --------------------------------------------------------------------------------------------
# ports
# --------------------------------------------------------------------------------------------


def cmd_ports(count):
    socks = []
    try:
        for _ in range(int(count)):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        for s in socks:
            print(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------------------------
# sign-in
# --------------------------------------------------------------------------------------------


class Forms(html.parser.HTMLParser):
    """The forms of a page: action, method and named inputs (buttons left out)."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self.current = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.current = {
                "action": attrs.get("action") or "",
                "method": (attrs.get("method") or "get").upper(),
                "fields": {},
            }
            self.forms.append(self.current)
        elif tag == "input" and self.current is not None and attrs.get("name"):
            if (attrs.get("type") or "text").lower() not in ("submit", "button", "image", "reset"):
                self.current["fields"][attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self.current = None


class Browser:
    """Manual redirects and a cookie jar keyed by host:port (cookies on 127.0.0.1 differ by port)."""

    def __init__(self):
        self.jar = {}

    def cookies(self, netloc):
        return self.jar.setdefault(netloc, {})

    def request(self, method, url, body=None):
        parts = urllib.parse.urlsplit(url)
        headers = {
            "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
            "User-Agent": "clearance-bench",
        }
        jar = self.cookies(parts.netloc)
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            for value in resp.headers.get_all("Set-Cookie") or []:
                self.store(jar, value)
            return resp.status, resp.headers, text
        finally:
            conn.close()

    @staticmethod
    def store(jar, set_cookie):
        first, *attrs = set_cookie.split(";")
        if "=" not in first:
            return
        name, value = (s.strip() for s in first.split("=", 1))
        expired = False
        for attr in attrs:
            key, _, val = attr.partition("=")
            key = key.strip().lower()
            if key == "max-age":
                expired = val.strip().lstrip("-").isdigit() and int(val.strip()) <= 0
            elif key == "expires" and "1970" in val:
                expired = True
        if expired:
            jar.pop(name, None)
        else:
            jar[name] = value.strip('"')


def cmd_signin(gate, login, path):
    browser = Browser()
    gate_netloc = urllib.parse.urlsplit(gate).netloc
    url, method, body = gate + path, "GET", None
    logins = 0
    trail = []
    for _ in range(40):
        status, headers, text = browser.request(method, url, body)
        trail.append(f"{method} {url} -> {status}")
        location = headers.get("Location")
        if status in (301, 302, 303, 307, 308) and location:
            url, method, body = urllib.parse.urljoin(url, location), "GET", None
            continue
        netloc = urllib.parse.urlsplit(url).netloc
        if netloc == gate_netloc:
            break  # back at Clearance, past the callback (not yet compliant: 403 is expected)
        parser = Forms()
        parser.feed(text)
        forms = parser.forms
        prompts = {f["fields"].get("prompt"): f for f in forms}
        if "login" in prompts:
            if logins:
                fail(f"the provider rejected login {login!r} ({status}): {text[:300]}")
            logins += 1
            form = prompts["login"]
            form["fields"].update(login=login, password="any-password")
        elif "consent" in prompts:
            form = prompts["consent"]
        elif "<title>Submitting Callback</title>" in text and forms:
            form = forms[0]
        else:
            fail(f"unexpected page at the provider ({status} at {url}): {text[:300]}\n"
                 + "\n".join(trail))
        url = urllib.parse.urljoin(url, form["action"] or url)
        encoded = urllib.parse.urlencode(form["fields"])
        if form["method"] == "POST":
            method, body = "POST", encoded
        else:
            method, body = "GET", None
            url = url.split("?", 1)[0] + "?" + encoded
    else:
        fail("sign-in did not finish within 40 requests:\n" + "\n".join(trail))
    cookies = browser.cookies(gate_netloc)
    if not cookies:
        fail("signed in, but Clearance set no session cookie:\n" + "\n".join(trail))
    print("; ".join(f"{k}={v}" for k, v in cookies.items()))


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


def pairs(values, cast):
    out = {}
    for item in values or []:
        key, _, value = item.partition("=")
        out[key] = cast(value)
    return out


def cmd_append(path, args):
    opts = {"--rss": [], "--cpu": [], "--sys": []}
    it = iter(args)
    for flag in it:
        value = next(it, None)
        if value is None:
            fail(f"{flag} needs a value")
        if flag in ("--rss", "--cpu", "--sys"):
            opts[flag].append(value)
        else:
            opts[flag] = value
    run = wrk_run(opts["--wrk"], opts["--case"], opts["--body"], int(opts["--round"]))
    run["peak_rss_kib"] = pairs(opts["--rss"], int)
    run["cpu_s"] = pairs(opts["--cpu"], float)
    # The part of cpu_s spent in the kernel (system time).
    run["sys_s"] = pairs(opts["--sys"], float)
    run["redis_commands"] = int(opts.get("--redis-commands", 0))
    wrk = run["wrk"]
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(run) + "\n")
    print(f"  {run['case']} {run['body']:>2} round {run['round']}: "
          f"{run['requests_per_s']:10.1f} req/s  p50 {ms(wrk['latency_us']['p50'])}  "
          f"p99 {ms(wrk['latency_us']['p99'])}  p99.9 {ms(wrk['latency_us']['p999'])} ms"
          + (f"  FAILED: {'; '.join(run['problems'])}" if run["problems"] else ""))


def wrk_run(wrk_output, case, body, round_no):
    """One wrk run from its output (the BENCH_JSON line of bench/wrk.lua), checked."""
    wrk = None
    with open(wrk_output, encoding="utf-8") as f:
        for line in f:
            if line.startswith("BENCH_JSON "):
                wrk = json.loads(line[len("BENCH_JSON "):])
    if wrk is None:
        fail(f"no BENCH_JSON line in {wrk_output} (wrk failed?)")
    seconds = wrk["duration_us"] / 1e6
    run = {
        "case": case,
        "body": body,
        "round": round_no,
        "requests_per_s": wrk["requests"] / seconds if seconds else 0.0,
        "wrk": wrk,
        # wrk counts answers >= 400; the set-ups answer no 1xx or 3xx (no redirects), so
        # this is every non-2xx answer.
        "non_2xx": wrk["errors"]["status"],
        "socket_errors": sum(v for k, v in wrk["errors"].items() if k != "status"),
    }
    run["problems"] = problems(run)
    return run


def problems(run):
    out = []
    wrk = run["wrk"]
    if run["non_2xx"]:
        out.append(f"{run['non_2xx']} non-2xx answers")
    if run["socket_errors"]:
        out.append(f"socket errors {wrk['errors']}")
    if wrk["requests"] == 0:
        out.append("no request completed")
    elif run["body"] in BODY_BYTES and wrk["bytes"] / wrk["requests"] < BODY_BYTES[run["body"]]:
        out.append(f"{wrk['bytes'] / wrk['requests']:.0f} bytes per answer, less than the body")
    return out


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def ms(us):
    return f"{us / 1000:.2f}"


def median_of(runs, case, body):
    chosen = [r for r in runs if r["case"] == case and r["body"] == body]
    if not chosen:
        return None
    med = lambda key: statistics.median(key(r) for r in chosen)  # noqa: E731
    groups = sorted({g for r in chosen for g in r["peak_rss_kib"]})
    cpu_groups = sorted({g for r in chosen for g in r["cpu_s"]})
    requests = med(lambda r: r["wrk"]["requests"])
    return {
        "rounds": len(chosen),
        "requests_per_s": med(lambda r: r["requests_per_s"]),
        "latency_ms": {
            p: med(lambda r, p=p: r["wrk"]["latency_us"][p]) / 1000 for p in ("p50", "p99", "p999")
        },
        "non_2xx": sum(r["non_2xx"] for r in chosen),
        "socket_errors": sum(r["socket_errors"] for r in chosen),
        "peak_rss_mib": {
            g: med(lambda r, g=g: r["peak_rss_kib"].get(g, 0)) / 1024 for g in groups
        },
        # CPU time per request, microseconds, by process group.
        "cpu_us_per_request": {
            g: med(lambda r, g=g: r["cpu_s"].get(g, 0) / max(r["wrk"]["requests"], 1)) * 1e6
            for g in cpu_groups
        },
        # Of which in the kernel (system time): for a proxy mostly the loopback TCP stack.
        "sys_us_per_request": {
            g: med(lambda r, g=g: r.get("sys_s", {}).get(g, 0) / max(r["wrk"]["requests"], 1)) * 1e6
            for g in cpu_groups
        },
        "redis_commands_per_request": med(
            lambda r: r.get("redis_commands", 0) / max(r["wrk"]["requests"], 1)),
        "requests": requests,
        "failed": any(r["problems"] for r in chosen),
    }


def table(header, rows, left=2):
    """A Markdown table; the first `left` columns left-aligned, the others right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(  # noqa: E731
        str(c).ljust(w) if i < left else str(c).rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths))
    ) + " |"
    print(line(header))
    print("|" + "|".join(("-" * (w + 1) + ":") if i >= left else "-" * (w + 2)
                         for i, w in enumerate(widths)) + "|")
    for row in rows:
        print(line(row))


def rss_cell(mib, group):
    return f"{mib[group]:.1f}" if group in mib else "-"


def cmd_report(results_path, meta_path, out_path):
    runs = load(results_path)
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    bodies = [b for b in BODY_BYTES if any(r["body"] == b for r in runs)]

    print("\nPer round (requests/s; latency in ms):\n")
    rows = []
    for r in sorted(runs, key=lambda r: (r["body"], r["case"], r["round"])):
        lat = r["wrk"]["latency_us"]
        rows.append([r["case"], r["body"], r["round"], f"{r['requests_per_s']:.0f}",
                     ms(lat["p50"]), ms(lat["p99"]), ms(lat["p999"]), r["non_2xx"],
                     r["socket_errors"]])
    table(["case", "body", "round", "req/s", "p50", "p99", "p99.9", "non-2xx", "sock err"], rows)

    medians = {b: {c: median_of(runs, c, b) for c in CASES} for b in bodies}
    print(f"\nMedian over {meta.get('rounds')} round(s) (requests/s; latency in ms; peak RSS in "
          "MiB; CPU time in µs per request, of which in the kernel in brackets; Redis commands per "
          "request):\n")
    rows = []
    for b in bodies:
        for c, title in CASES.items():
            m = medians[b][c]
            if m is None:
                continue
            cpu, sys_ = m["cpu_us_per_request"], m["sys_us_per_request"]
            cpu_cell = lambda g: (f"{cpu[g]:.0f} ({sys_.get(g, 0):.0f})"  # noqa: E731
                                  if g in cpu else "-")
            rows.append([
                f"{c} {title}", b, f"{m['requests_per_s']:.0f}",
                f"{m['latency_ms']['p50']:.2f}", f"{m['latency_ms']['p99']:.2f}",
                f"{m['latency_ms']['p999']:.2f}", m["non_2xx"], m["socket_errors"],
                rss_cell(m["peak_rss_mib"], "clearance"), rss_cell(m["peak_rss_mib"], "proxy"),
                cpu_cell("clearance"), cpu_cell("proxy"),
                f"{m['redis_commands_per_request']:.2f}",
                "FAILED" if m["failed"] else "ok",
            ])
    table(["case", "body", "req/s", "p50", "p99", "p99.9", "non-2xx", "sock err",
           "RSS Clearance", "RSS proxy", "CPU Clearance", "CPU proxy", "Redis cmds", ""], rows)

    ratios = {}
    for b in bodies:
        for name, num, den in RATIOS:
            n, d = medians[b].get(num), medians[b].get(den)
            if n and d and d["requests_per_s"]:
                ratios.setdefault(name, {})[b] = n["requests_per_s"] / d["requests_per_s"]
    print("\nThroughput ratios (median requests/s):\n")
    table(["ratio"] + [f"{b} body" for b in bodies],
          [[name] + [f"{ratios[name][b]:.2f}" if b in ratios.get(name, {}) else "-"
                     for b in bodies]
           for name, _, _ in RATIOS], left=1)

    paced = meta.pop("paced", None)
    if paced:
        print(f"\nc at half of its 1 KiB peak: target {paced['target_requests_per_s']:.0f} req/s, "
              f"achieved {paced['requests_per_s']:.0f} req/s, "
              f"p50 {paced['latency_ms']['p50']:.2f} ms, p99 {paced['latency_ms']['p99']:.2f} ms, "
              f"p99.9 {paced['latency_ms']['p999']:.2f} ms"
              + (f"  FAILED: {'; '.join(paced['problems'])}" if paced["problems"] else ""))

    failures = sorted({f"{r['case']} {r['body']}: {p}" for r in runs for p in r["problems"]})
    if paced and paced["problems"]:
        failures += [f"paced c 1k: {p}" for p in paced["problems"]]
    out = {"meta": meta, "cases": CASES, "runs": runs, "median": medians, "ratios": ratios,
           "paced": paced, "failures": failures}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"\nresults: {out_path}")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)


def cmd_paced(path, target, wrk_output):
    run = wrk_run(wrk_output, "c", "1k", 0)
    wrk = run["wrk"]
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    meta["paced"] = {
        "target_requests_per_s": float(target),
        "requests_per_s": run["requests_per_s"],
        "latency_ms": {p: wrk["latency_us"][p] / 1000 for p in ("p50", "p99", "p999")},
        "non_2xx": run["non_2xx"],
        "socket_errors": run["socket_errors"],
        "problems": run["problems"],
        "wrk": wrk,
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)


def main(argv):
    if len(argv) < 2:
        fail(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "ports" and len(args) == 1:
        cmd_ports(args[0])
    elif cmd == "signin" and len(args) == 3:
        cmd_signin(*args)
    elif cmd == "append" and args:
        cmd_append(args[0], args[1:])
    elif cmd == "rate" and len(args) == 3:
        m = median_of(load(args[0]), args[1], args[2])
        if m is None:
            fail(f"no runs of case {args[1]} with body {args[2]}")
        print(f"{m['requests_per_s']:.1f}")
    elif cmd == "paced" and len(args) == 3:
        cmd_paced(*args)
    elif cmd == "report" and len(args) == 3:
        cmd_report(*args)
    else:
        fail(__doc__)


if __name__ == "__main__":
    main(sys.argv)
