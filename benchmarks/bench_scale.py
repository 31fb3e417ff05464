"""Verdicts at benchmark scale: the report, the Studio's Compare, W&B and the Runner on 100 / 1,000 / 10,000
records, figures and ratios side by side, each target with PASS / FAIL.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 100,1000,10000] [--runner-sizes 100,10000] [--keep DIR]

Run folders come from `benchmarks/scale_fixture.py` (realistic records, no generation). Measured:

- `workbench report RUN --clips link` (the real CLI, a subprocess): cold, again with nothing changed, again
  after one new record is appended; the process's peak RSS (wait4); report.html's size;
- the Studio's Compare tab (in-process widget calls): opening the largest folder, then the next page;
- W&B offline logging of the comparison table (`tracking.sync_run_folder`), and whether the offline run
  holds every row (read back with `tracking.read_offline_run`);
- `workbench run` overhead per job: a trivial model-free job (`static`, 2 frames of 16x16, one cheap
  metric) N times, through the real command, timing from the 10th record to the last (process start,
  suite expansion and the first jobs' imports are not counted); then the same command again, which
  finds every job done (the resume). The verdict compares the process's CPU time per job (other
  processes on a shared machine stretch the wall time, not this); the wall-clock mean and median and,
  within the largest run, the last tenth of its jobs against the first are printed beside it.

The figures depend on the machine and its load: the script prints the load average beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_fixture import build_run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true", "TQDM_DISABLE": "1"}

TARGETS = {  # name: (limit, unit, wording)
    "report_cold": (30.0, "s", "report of 10,000 cold"),
    "report_unchanged": (2.0, "s", "report of 10,000 again, nothing changed"),
    "report_one_new": (5.0, "s", "report of 10,000 after one new record"),
    "report_per_record": (1.5, "x", "report cost per record at 10,000 / at 1,000"),
    "report_rss": (1024.0, "MB", "report peak memory"),
    "report_html": (10.0, "MB", "report.html with clips linked"),
    "compare_open": (2.0, "s", "Studio Compare opens 10,000"),
    "compare_next": (0.5, "s", "Studio Compare next page"),
    "runner_ratio": (1.2, "x", "Runner overhead per job at 10,000 / at 100"),
}


def timed(cmd: list[str]) -> tuple[float, float, int, str]:
    """(seconds, peak RSS in MB, exit code, last output line) of one command (a child process). The peak is
    GNU time's %M when /usr/bin/time is there, else the RSS sampled every 20 ms (psutil). Not the child's
    rusage: a forked child's high-water mark counts the parent's pages it started with."""
    gnu_time = Path("/usr/bin/time")
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        full = [str(gnu_time), "-f", "%M", "-o", rss_file.name, *cmd] if gnu_time.exists() else cmd
        t = time.perf_counter()
        proc = subprocess.Popen(full, env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        peak = 0
        if not gnu_time.exists():
            import psutil

            p = psutil.Process(proc.pid)
            while proc.poll() is None:
                try:
                    peak = max(peak, sum(c.memory_info().rss for c in [p, *p.children(recursive=True)]))
                except psutil.Error:
                    pass
                time.sleep(0.02)
        out = proc.stdout.read().decode(errors="replace")
        proc.wait()
        secs = time.perf_counter() - t
        if gnu_time.exists():
            try:
                peak = int(rss_file.read().strip().splitlines()[-1]) * 1024
            except (ValueError, IndexError):
                peak = 0
    last = (out.strip().splitlines() or [""])[-1]
    return secs, peak / 2 ** 20, proc.returncode, last


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def append_one(run: Path) -> None:
    """One new record: the last job again (a retry), finished later, its scores moved a little."""
    from workbench.store import RunStore

    store = RunStore(run)
    rec = dict(list(store.latest().values())[-1])
    rec["finished_at"] = "2027-01-01T00:00:00+00:00"
    rec["scores"] = {k: (v * 0.99 if isinstance(v, float) else v) for k, v in (rec.get("scores") or {}).items()}
    store.append(rec)


# --------------------------------------------------------------------------------------------------
def bench_report(runs: dict[int, Path]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    warm = build_run(runs[min(runs)].parent / "warm-up", 20)  # one report first, of its own folder, not timed:
    timed([str(BIN / "workbench"), "report", str(warm), "--clips", "link"])  # the first process pays for cold caches
    for n, run in runs.items():
        cmd = [str(BIN / "workbench"), "report", str(run), "--clips", "link"]
        cold, rss, rc, last = timed(cmd)
        if rc != 0:
            print(f"  report of {n}: exit {rc}: {last}")
        again, rss2, _, _ = timed(cmd)
        append_one(run)
        one, rss3, _, _ = timed(cmd)
        html = run / "report.html"
        out[n] = {"cold": cold, "unchanged": again, "one_new": one, "rss": max(rss, rss2, rss3),
                  "html_mb": html.stat().st_size / 1e6 if html.is_file() else float("nan"), "rc": rc}
        print(f"  report {n:>6,}: cold {cold:6.2f} s, unchanged {again:6.2f} s, one new {one:6.2f} s, "
              f"peak {out[n]['rss']:6.0f} MB, report.html {out[n]['html_mb']:6.2f} MB", flush=True)
    return out


def bench_compare(runs_root: Path, run: Path, warm: Path | None = None) -> dict[str, float | None]:
    """Open the folder in the Studio's Compare tab, then go to the next page (in-process widget calls). The
    tab opens `warm` (a small folder) first, as a Studio session has its modules imported already."""
    try:
        from workbench.ui.compare import CompareTab
    except Exception as e:  # noqa: BLE001 - report, do not crash the benchmark
        print(f"  Studio Compare: not available ({type(e).__name__}: {e})")
        return {"open": None, "next": None}
    t = time.perf_counter()
    tab = CompareTab(runs_root)
    made = time.perf_counter() - t
    if warm is not None and warm != run:
        tab.load(warm)
        if hasattr(tab, "wait_summary"):
            tab.wait_summary(120)
    t = time.perf_counter()
    tab.load(run)
    opened = time.perf_counter() - t
    nxt = None
    if hasattr(tab, "next_page"):
        step = tab.next_page
    elif hasattr(tab, "go") and hasattr(tab, "page_index"):
        step = lambda: tab.go(tab.page_index + 1)  # noqa: E731
    else:
        step = None
    if step is not None:
        t = time.perf_counter()
        step()
        nxt = time.perf_counter() - t
    summary = None
    if hasattr(tab, "wait_summary"):
        t = time.perf_counter()
        tab.wait_summary(120)
        summary = time.perf_counter() - t
    shown = getattr(getattr(tab, "page", None), "label", "")
    print(f"  Studio Compare: tab {made:.2f} s, open {opened:.2f} s, next page "
          + (f"{nxt:.3f} s" if nxt is not None else "not available")
          + (f", summary ready {summary:.2f} s after" if summary is not None else "") + (f" ({shown})" if shown else ""),
          flush=True)
    return {"open": opened, "next": nxt}


def bench_wandb(runs: dict[int, Path]) -> dict[int, dict[str, float]]:
    from workbench.runset import current_records  # noqa: F401 - imported before timing
    from workbench.store import load_records
    from workbench.tracking import read_offline_run, sync_run_folder

    out: dict[int, dict[str, float]] = {}
    for n, run in runs.items():
        shutil.rmtree(run / "wandb", ignore_errors=True)
        t = time.perf_counter()
        tracker = sync_run_folder(run, mode="offline")
        secs = time.perf_counter() - t
        failed = getattr(tracker, "failed", None)
        folders = sorted((run / "wandb").glob("offline-run-*"))
        rows = -1
        if folders:
            held = read_offline_run(folders[-1], wait_s=120)
            rows = len((held["tables"].get("comparison") or {}).get("data") or [])
        want = len(load_records(run))
        out[n] = {"seconds": secs, "rows": rows, "records": want}
        print(f"  W&B offline {n:>6,}: {secs:6.2f} s, comparison table {rows:,} rows of {want:,} records"
              + (f" (failed: {failed})" if failed else ""), flush=True)
    return out


def overhead_suite(folder: Path, n: int) -> Path:
    import numpy as np
    import yaml
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16, 3), 120, np.uint8)).save(folder / "tiny.png")
    spec = {"name": f"overhead-{n}", "cases": [{"id": f"c{i:05d}", "image": "tiny.png"} for i in range(n)],
            "models": [{"name": "static", "params": {"num_frames": 2, "width": 16, "height": 16}}], "seeds": [0],
            "metrics": ["flow_magnitude"], "tracking": {"wandb": False, "html_report": False}}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def bench_runner(work: Path, sizes: list[int], skip_first: int = 10) -> dict[int, dict[str, float]]:
    """Per-job cost of `workbench run` at each size: the real command (run through `--as-cli`, which only
    stamps the time each record is yielded), per job = (last stamp - stamp of job `skip_first`) / the jobs
    between, so the process start, the suite expansion and the first jobs' imports are not counted; the
    median interval beside it is robust to a loaded machine's spikes. Then the same command again (the
    resume: it finds every job done)."""
    import statistics

    out: dict[int, dict[str, float]] = {}
    for n in sizes:
        folder = work / f"overhead-{n}"
        shutil.rmtree(folder, ignore_errors=True)
        suite = overhead_suite(folder, n)
        stamps_file = folder / "stamps.json"
        args = ["run", str(suite), "--out", str(folder / "run"), "--no-report", "--wandb", "disabled"]
        t_run, rss, rc, last = timed([sys.executable, __file__, "--as-cli", str(stamps_file), *args])
        stamps = json.loads(stamps_file.read_text()) if stamps_file.is_file() else []
        t_noop, _, rc2, last2 = timed([str(BIN / "workbench"), *args])
        lines = (folder / "run" / "results.jsonl").read_text().count("\n")
        k = min(skip_first, max(0, len(stamps) - 2))
        wall = [b[0] - a[0] for a, b in zip(stamps[k:], stamps[k + 1:])]
        nan = float("nan")
        mean = (stamps[-1][0] - stamps[k][0]) / len(wall) if wall else nan
        cpu = (stamps[-1][1] - stamps[k][1]) / len(wall) if wall else nan
        tenth = max(1, len(wall) // 10)  # within the run: the last tenth of the jobs against the first
        trend = (statistics.median(wall[-tenth:]) / statistics.median(wall[:tenth])) if len(wall) >= 20 else nan
        out[n] = {"run": t_run, "resume": t_noop, "per_job_ms": mean * 1000, "cpu_ms": cpu * 1000,
                  "median_ms": statistics.median(wall) * 1000 if wall else nan, "trend": trend, "rss": rss,
                  "records": lines}
        print(f"  workbench run {n:>6,} jobs: {t_run:7.2f} s (exit {rc}), per job {cpu * 1000:6.2f} ms CPU, wall "
              f"{mean * 1000:.2f} ms mean, {out[n]['median_ms']:.2f} ms median, last tenth / first tenth {trend:.2f}x; "
              f"peak {rss:5.0f} MB, {lines:,} records; the same again {t_noop:6.2f} s (exit {rc2})", flush=True)
        if lines != n:
            print(f"    expected {n} records: {last}")
    return out


def as_cli(stamps_file: str, args: list[str]) -> None:
    """`workbench ARGS` in this process, with the time each record is yielded written to `stamps_file` at
    exit (the command itself is untouched)."""
    import atexit

    from workbench import experiment

    stamps: list[float] = []
    plain = experiment.Runner.run

    def run(self):
        for rec in plain(self):
            stamps.append((time.perf_counter(), time.process_time()))
            yield rec

    experiment.Runner.run = run
    atexit.register(lambda: Path(stamps_file).write_text(json.dumps(stamps)))
    from workbench.cli import app

    sys.argv = ["workbench", *args]
    app()


def verdict(name: str, value: float | None, detail: str = "") -> None:
    limit, unit, words = TARGETS[name]
    if value is None:
        print(f"  {words:<48} {'n/a':>10}   (limit {limit:g} {unit})  NOT MEASURED {detail}")
        return
    ok = value <= limit
    print(f"  {words:<48} {value:>10.2f} {unit:<3}(limit {limit:g} {unit})  {'PASS' if ok else 'FAIL'} {detail}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--as-cli":
        as_cli(sys.argv[2], sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000", help="record counts of the report / Compare / W&B folders")
    ap.add_argument("--runner-sizes", default="100,10000", help="job counts of the Runner overhead runs ('' skips)")
    ap.add_argument("--keep", type=Path, default=None, help="build in this folder and keep it (default: a temp folder)")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: report,compare,wandb,runner")
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",") if x]
    runner_sizes = [int(x) for x in a.runner_sizes.split(",") if x]
    skip = set(a.skip.split(","))
    work = a.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"bench_scale: {work} ({load()})", flush=True)
    runs_root = work / "runs"
    runs: dict[int, Path] = {}
    for n in sizes:
        shutil.rmtree(runs_root / f"scale-{n}", ignore_errors=True)
        t = time.perf_counter()
        runs[n] = build_run(runs_root / f"scale-{n}", n)
        print(f"  fixture {n:>6,} records: {time.perf_counter() - t:.2f} s", flush=True)
    big, mid = max(sizes), (sorted(sizes)[-2] if len(sizes) > 1 else None)

    rep = bench_report(runs) if "report" not in skip else {}
    cmp_ = bench_compare(runs_root, runs[big], runs[min(sizes)]) if "compare" not in skip else {"open": None, "next": None}
    wb = bench_wandb(runs) if "wandb" not in skip else {}
    run_ = bench_runner(work, runner_sizes) if runner_sizes and "runner" not in skip else {}

    print(f"\nfigures ({load()})")
    head = f"  {'records':>8} | {'report cold':>11} | {'unchanged':>9} | {'one new':>8} | {'per record':>10} | " \
           f"{'peak MB':>7} | {'html MB':>7} | {'W&B s':>6} | {'W&B rows':>9}"
    print(head)
    for n in sizes:
        r, w = rep.get(n, {}), wb.get(n, {})
        per = r.get("cold", float("nan")) / n * 1000
        print(f"  {n:>8,} | {r.get('cold', float('nan')):>9.2f} s | {r.get('unchanged', float('nan')):>7.2f} s | "
              f"{r.get('one_new', float('nan')):>6.2f} s | {per:>7.2f} ms | {r.get('rss', float('nan')):>7.0f} | "
              f"{r.get('html_mb', float('nan')):>7.2f} | {w.get('seconds', float('nan')):>6.2f} | "
              f"{int(w.get('rows', -1)):>9,}")
    if run_:
        print(f"  {'jobs':>8} | {'run s':>11} | {'resume s':>9} | {'CPU ms/job':>10} | {'wall mean':>9} | "
              f"{'wall median':>11} | {'peak MB':>7}")
        for n, r in run_.items():
            print(f"  {n:>8,} | {r['run']:>11.2f} | {r['resume']:>9.2f} | {r['cpu_ms']:>10.2f} | {r['per_job_ms']:>9.2f} | "
                  f"{r['median_ms']:>11.2f} | {r['rss']:>7.0f}")

    print(f"\ntargets (at {big:,} records)")
    r = rep.get(big)
    verdict("report_cold", r and r["cold"])
    verdict("report_unchanged", r and r["unchanged"])
    verdict("report_one_new", r and r["one_new"])
    if r and mid and rep.get(mid):
        small = min(sizes)
        whole = (r["cold"] / big) / (rep[mid]["cold"] / mid)
        note = ""
        if small < mid and rep.get(small) and rep[mid]["cold"] > rep[small]["cold"] and r["cold"] > rep[mid]["cold"]:
            marginal = ((r["cold"] - rep[mid]["cold"]) / (big - mid)) / ((rep[mid]["cold"] - rep[small]["cold"]) / (mid - small))
            note = f"(cold seconds / records; the marginal cost between sizes: {marginal:.2f}x)"
        verdict("report_per_record", whole, note)
    else:
        verdict("report_per_record", None)
    verdict("report_rss", r and max(x["rss"] for x in rep.values()))
    verdict("report_html", r and r["html_mb"])
    verdict("compare_open", cmp_["open"])
    verdict("compare_next", cmp_["next"])
    if len(run_) >= 2:
        lo, hi = min(run_), max(run_)
        verdict("runner_ratio", run_[hi]["cpu_ms"] / run_[lo]["cpu_ms"],
                f"(CPU per job, {run_[hi]['cpu_ms']:.2f} ms at {hi:,}, {run_[lo]['cpu_ms']:.2f} ms at {lo:,}; wall: mean "
                f"{run_[hi]['per_job_ms'] / run_[lo]['per_job_ms']:.2f}x, median "
                f"{run_[hi]['median_ms'] / run_[lo]['median_ms']:.2f}x; in the {hi:,} run, last tenth / first tenth "
                f"{run_[hi]['trend']:.2f}x)")
    else:
        verdict("runner_ratio", None)
    w = wb.get(big)
    if w:
        ok = w["rows"] == w["records"]
        print(f"  {'W&B comparison table holds every row':<48} {w['rows']:>10,} of {w['records']:,}  {'PASS' if ok else 'FAIL'}")
    if a.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
