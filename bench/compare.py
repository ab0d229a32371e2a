#!/usr/bin/env python3
"""Side-by-side benchmarks of vblk against fio and qemu-img bench on the same files, alternating
runs in one process so that both see the same machine state. Prints a markdown table per case
with medians and ratios; docs/PERFORMANCE.md records its output and this command line.

Usage: bench/compare.py [--rounds N] [--seconds S] [--dir DIR] [--only CASE,...]
Cases: aio (vblk Linux AIO path vs fio libaio), block (--path block vs --path aio),
       null (vblk null vs qemu-img bench null-co), virtio (--path virtio vs --path block, and null),
       qcow2 (rewrite and allocating writes vs qemu-img bench),
       paired (many short back-to-back pairs of block vs aio and virtio vs block, --rounds pairs
       each: the median of the paired ratios with a bootstrap 90 % interval, for targets of a few
       percent on a disk that drifts by more than that).
This is a benchmark, not a test: it asserts nothing.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VBLK = os.path.join(ROOT, "vblk")
# vblk against vblk (block vs aio, virtio vs block): both sides first run untimed requests so that
# the JIT has compiled each path before the clock starts; against fio and qemu-img bench, which
# need no warm-up, vblk runs cold.
WARMUP = "--warmup=100000"


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def vblk_bench(args):
    out = run([VBLK, "bench", "--output=json"] + args)
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    j = json.loads(line)
    j["cpu_per_io_us"] = j["cpu_s"] / j["ops"] * 1e6 if j["ops"] else 0
    return j


def fio(path, rw, qd, seconds):
    out = run(["fio", "--name=b", f"--filename={path}", "--size=1G", f"--rw={rw}", "--bs=4k",
               "--ioengine=libaio", "--direct=1", f"--iodepth={qd}", "--numjobs=1",
               f"--runtime={seconds}", "--time_based", "--group_reporting", "--output-format=json"])
    j = json.loads(out[out.index("{"):])
    job = j["jobs"][0]
    side = job["read"] if "read" in rw else job["write"]
    runtime_s = job["job_runtime"] / 1000.0
    cpu_s = (job["usr_cpu"] + job["sys_cpu"]) / 100.0 * runtime_s
    ios = side["total_ios"]
    return {"iops": side["iops"], "cpu_per_io_us": cpu_s / ios * 1e6 if ios else 0}


def qemu_img_bench(args, count):
    t0 = time.monotonic()
    out = run(["qemu-img", "bench"] + args)
    secs = None
    for l in out.splitlines():
        if l.startswith("Run completed in"):
            secs = float(l.split()[3])
    secs = secs or (time.monotonic() - t0)
    return {"iops": count / secs, "seconds": secs}


def med(xs, key):
    return statistics.median(x[key] for x in xs)


def table(title, cmd_lines, rows):
    """rows: (name, vblk, reference, unit[, paired]) where paired is a list of per-round ratios."""
    print(f"\n### {title}\n")
    for c in cmd_lines:
        print(f"    {c}")
    print()
    paired = any(len(r) > 4 for r in rows)
    print("| case | vblk | reference | ratio |" + (" median of per-round ratios |" if paired else ""))
    print("|---|---|---|---|" + ("---|" if paired else ""))
    for r in rows:
        name, a, b, unit = r[:4]
        ratio = a / b if b else float("nan")
        extra = ""
        if paired:
            extra = f" {statistics.median(r[4]):.2f}x ({min(r[4]):.2f}-{max(r[4]):.2f}) |" if len(r) > 4 else " |"
        print(f"| {name} | {a:,.0f} {unit} | {b:,.0f} {unit} | {ratio:.2f}x |{extra}")
    sys.stdout.flush()


def ratios(xs, ys, key="iops"):
    return [x[key] / y[key] for x, y in zip(xs, ys) if y[key]]


def prefill(path, size="1G"):
    run(["fio", "--name=fill", f"--filename={path}", f"--size={size}", "--rw=write", "--bs=1M",
         "--ioengine=libaio", "--direct=1", "--iodepth=8"])


def case_aio(a, d):
    path = os.path.join(d, "raw.img")
    prefill(path)
    rows, cpu_rows = [], []
    for rw in ("randread", "randwrite"):
        for qd in (32, 128):
            v, f = [], []
            count = 400000 if "read" in rw else 200000
            for _ in range(a.rounds):
                args = ["-f", "raw", "-t", "none", "-i", "native", "--path", "aio", "--random", "-d", str(qd),
                        "-s", "4k", "-c", str(count)] + (["-w"] if "write" in rw else []) + [path]
                v.append(vblk_bench(args))
                f.append(fio(path, rw, qd, a.seconds))
            rows.append((f"{rw} QD{qd} IOPS", med(v, "iops"), med(f, "iops"), "IOPS"))
            cpu_rows.append((f"{rw} QD{qd} CPU per I/O", med(v, "cpu_per_io_us"), med(f, "cpu_per_io_us"), "us"))
            batch = statistics.median(x.get("iocbs_per_submit", 0) for x in v)
            reap = statistics.median(x.get("completions_per_reap", 0) for x in v)
            print(f"<!-- {rw} QD{qd}: vblk iocbs/io_submit {batch:.2f}, completions/reap {reap:.2f} -->")
    table("Linux AIO engine vs fio libaio (1 GiB prefilled raw file, O_DIRECT, 4k random)",
          [f"vblk bench -f raw -t none -i native --path aio --random -d QD -s 4k -c N [-w] {path}",
           f"fio --rw=randread|randwrite --bs=4k --ioengine=libaio --direct=1 --iodepth=QD --runtime={a.seconds} --time_based"],
          rows)
    table("CPU per I/O (vblk: process CPU over the run; fio: usr+sys)", [], cpu_rows)


def case_block(a, d):
    path = os.path.join(d, "raw.img")
    if not os.path.exists(path):
        prefill(path)
    rows = []
    n = "600000"
    for rw in ("randread", "randwrite"):
        fil, raw, aio = [], [], []
        for i in range(a.rounds):
            base = ["-t", "none", "-i", "native", "--random", "-d", "32", "-s", "4k", "-c", n, WARMUP] + \
                   (["-w"] if "write" in rw else [])
            runs = [(fil, ["-f", "file", "--path", "block"]), (raw, ["-f", "raw", "--path", "block"]),
                    (aio, ["-f", "raw", "--path", "aio"])]
            for lst, extra in (runs if i % 2 == 0 else runs[::-1]):   # alternate the order
                lst.append(vblk_bench(base + extra + [path]))
        rows.append((f"{rw} QD32, block over file (-f file)", med(fil, "iops"), med(aio, "iops"), "IOPS", ratios(fil, aio)))
        rows.append((f"{rw} QD32, block over raw over file (-f raw)", med(raw, "iops"), med(aio, "iops"), "IOPS", ratios(raw, aio)))
    table("Block layer over file (O_DIRECT) vs the AIO engine alone", [
        f"vblk bench -f file|raw -t none -i native --random -d 32 -s 4k -c {n} {WARMUP} [-w] --path block FILE",
        f"vblk bench -f raw -t none -i native --random -d 32 -s 4k -c {n} {WARMUP} [-w] --path aio FILE   (reference)"], rows)


def case_null(a, d):
    rows = []
    n = 2000000
    for w in (False, True):
        v, q = [], []
        for _ in range(a.rounds):
            v.append(vblk_bench(["-f", "null", "-d", "32", "-s", "4k", "-c", str(n)] + (["-w"] if w else []) + ["1G"]))
            q.append(qemu_img_bench(["--image-opts", "-c", str(n), "-d", "32", "-s", "4k"] + (["-w"] if w else []) +
                                    ["driver=null-co,size=1G"], n))
        rows.append(("4k " + ("write" if w else "read") + " QD32", med(v, "iops"), med(q, "iops"), "req/s"))
    table("Block layer over null vs qemu-img bench over null-co", [
        f"vblk bench -f null -d 32 -s 4k -c {n} [-w] 1G",
        f"qemu-img bench --image-opts -c {n} -d 32 -s 4k [-w] driver=null-co,size=1G"], rows)


def case_virtio(a, d):
    path = os.path.join(d, "raw.img")
    if not os.path.exists(path):
        prefill(path)
    rows = []
    for rw in ("randread", "randwrite"):
        vio, blk = [], []
        for i in range(a.rounds):
            base = ["-f", "raw", "-t", "none", "-i", "native", "--random", "-d", "32", "-s", "4k", "-c", "600000", WARMUP] + \
                   (["-w"] if "write" in rw else [])
            runs = [(vio, "virtio"), (blk, "block")]
            for lst, p in (runs if i % 2 == 0 else runs[::-1]):
                lst.append(vblk_bench(base + ["--path", p, path]))
        rows.append((f"{rw} QD32 raw O_DIRECT", med(vio, "iops"), med(blk, "iops"), "IOPS", ratios(vio, blk)))
    per_core = []
    for w in (False, True):
        vio, blk = [], []
        for _ in range(a.rounds):
            base = ["-f", "null", "-d", "32", "-s", "4k", "-c", "2000000", WARMUP] + (["-w"] if w else [])
            vio.append(vblk_bench(base + ["--path", "virtio", "1G"]))
            blk.append(vblk_bench(base + ["--path", "block", "1G"]))
        rows.append(("null 4k " + ("write" if w else "read") + " QD32", med(vio, "iops"), med(blk, "iops"), "IOPS", ratios(vio, blk)))
        for v in vio:
            v["per_core"] = v["ops"] / v["io_thread_cpu_s"] if v.get("io_thread_cpu_s", 0) > 0 else 0
        per_core.append(("null 4k " + ("write" if w else "read"), med(vio, "per_core"), med(vio, "io_thread_cpu_s") / med(vio, "seconds")))
    table("virtio path vs block path", [
        f"vblk bench ... {WARMUP} --path virtio|block (raw: -f raw -t none -i native --random -d 32 -s 4k -c 600000; null: -f null -d 32 -s 4k -c 2000000 1G)"], rows)
    print("\nvirtio over null, requests per second of the I/O thread's own CPU (guest driver, device and block layer "
          "all run on that one thread):\n")
    print("| case | IOPS per core (ops / io_thread_cpu_s) | I/O thread busy |")
    print("|---|---|---|")
    for name, pc, busy in per_core:
        print(f"| {name} | {pc:,.0f} | {busy:.0%} |")
    sys.stdout.flush()


def case_qcow2(a, d):
    rows = []
    img = os.path.join(d, "q.qcow2")
    raw = os.path.join(d, "raw.img")
    if not os.path.exists(raw):
        prefill(raw)
    n = 200000
    run(["qemu-img", "create", "-q", "-f", "qcow2", img, "1G"])
    run(["qemu-img", "bench", "-q", "-w", "-t", "none", "-i", "native", "-c", "262144", "-d", "32", "-s", "4k", "-f", "qcow2", img])
    v, q, r = [], [], []
    for _ in range(a.rounds):
        common = ["-w", "-t", "none", "-i", "native", "-d", "32", "-s", "4k", "-c", str(n)]
        v.append(vblk_bench(["-f", "qcow2"] + common + [img]))
        q.append(qemu_img_bench(["-f", "qcow2"] + common + [img], n))
        r.append(vblk_bench(["-f", "raw"] + common + [raw]))
    rows.append(("rewrite allocated clusters vs qemu-img bench", med(v, "iops"), med(q, "iops"), "IOPS"))
    rows.append(("rewrite allocated clusters vs vblk raw", med(v, "iops"), med(r, "iops"), "IOPS"))
    v, q = [], []
    m = 16000
    for _ in range(a.rounds):
        common = ["-w", "-t", "none", "-i", "native", "-d", "32", "-s", "4k", "-S", "64k", "-c", str(m)]
        for who, lst in (("vblk", v), ("qemu", q)):
            os.unlink(img)
            run(["qemu-img", "create", "-q", "-f", "qcow2", img, "1G"])
            if who == "vblk":
                lst.append(vblk_bench(["-f", "qcow2"] + common + [img]))
            else:
                lst.append(qemu_img_bench(["-f", "qcow2"] + common + [img], m))
    rows.append(("each write allocates a 64k cluster", med(v, "iops"), med(q, "iops"), "IOPS"))
    table("qcow2 4k writes QD32, -t none -i native, vs qemu-img bench on the same image", [
        f"vblk bench -f qcow2 -w -t none -i native -d 32 -s 4k -c {n} IMG  /  qemu-img bench (same arguments)",
        f"allocating: fresh 1G image each run, -S 64k -c {m}"], rows)


def bootstrap_median_ci(xs, n=4000, seed=1):
    """90 % percentile-bootstrap interval of the median of xs (seeded: the same ratios print the same interval)."""
    import random
    rnd = random.Random(seed)
    meds = sorted(statistics.median(rnd.choices(xs, k=len(xs))) for _ in range(n))
    return meds[int(0.05 * n)], meds[int(0.95 * n) - 1]


def case_paired(a, d):
    path = os.path.join(d, "raw.img")
    if not os.path.exists(path):
        prefill(path)
    n, warm = "200000", "--warmup=60000"
    base = ["-t", "none", "-i", "native", "--random", "-d", "32", "-s", "4k", "-c", n, warm]
    # block over file against the AIO engine (issue 3's wording; -f is ignored by --path aio), and
    # virtio over block on the graph a guest gets (raw over file) on both sides (issue 5)
    comps = [("block / aio", "block", "aio", 0.97, "file"), ("virtio / block", "virtio", "block", 0.98, "raw")]
    cases = [(c, w) for c in comps for w in (False, True)
             if not a.pcases or f"{c[1]}-{'write' if w else 'read'}" in a.pcases.split(",")]
    res = {k: ([], []) for k in cases}   # A runs, B runs
    for i in range(a.rounds):
        for j, (c, w) in enumerate(cases[i % len(cases):] + cases[:i % len(cases)]):   # rotate the case order
            args = ["-f", c[4]] + base + (["-w"] if w else [])
            runs = list(zip(res[(c, w)], c[1:3]))
            for lst, p in (runs if (i + j) % 2 == 0 else runs[::-1]):                    # alternate who runs first
                lst.append(vblk_bench(args + ["--path", p, path]))
        print(f"<!-- pair {i + 1}/{a.rounds} done -->", flush=True)
    print(f"\n### Paired runs: {a.rounds} back-to-back pairs per case, order alternated\n")
    print(f"    vblk bench -f file|raw {' '.join(base)} [-w] --path A|B {path}   (block / aio: -f file; virtio / block: -f raw)\n")
    print("| case | pairs | A median IOPS | B median IOPS | ratio of medians | median of paired ratios | 90 % interval (bootstrap) | pairs at or above target | A CPU/req (I/O thread) | B CPU/req | A reap to submit | B reap to submit |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (c, w), (A, B) in res.items():
        R = ratios(A, B)
        lo, hi = bootstrap_median_ci(R)
        cpu = lambda xs: statistics.median(x["io_thread_cpu_s"] / x["ops"] * 1e6 for x in xs if x.get("ops"))
        print(f"| {c[0]} {'write' if w else 'read'} (target {c[3]}) | {len(R)} | {med(A, 'iops'):,.0f} | {med(B, 'iops'):,.0f} | "
              f"{med(A, 'iops') / med(B, 'iops'):.3f} | {statistics.median(R):.3f} | {lo:.3f}-{hi:.3f} | "
              f"{sum(r >= c[3] for r in R)}/{len(R)} | {cpu(A):.2f} us | {cpu(B):.2f} us | "
              f"{med(A, 'reap_to_submit_us'):.1f} us | {med(B, 'reap_to_submit_us'):.1f} us |")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--only", default="aio,block,null,virtio,qcow2")
    ap.add_argument("--pcases", default="", help="paired: a subset of block-read,block-write,virtio-read,virtio-write")
    a = ap.parse_args()
    d = a.dir or tempfile.mkdtemp(prefix="vblk-bench-", dir="/var/tmp")
    os.makedirs(d, exist_ok=True)
    print(f"<!-- bench/compare.py --rounds {a.rounds} --seconds {a.seconds} --only {a.only}"
          + (f" --pcases {a.pcases}" if a.pcases else "") + "; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; nproc {os.cpu_count()}; dir {d} -->")
    try:
        for c in a.only.split(","):
            globals()["case_" + c](a, d)
    finally:
        if not a.dir:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
