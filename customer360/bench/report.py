"""The benchmark's outputs: result.json, freshness.png and a short table on stdout."""

from __future__ import annotations

import json
from pathlib import Path

from customer360.bench.stats import BATCH_STEPS
from customer360.pipeline.dbt_invoker import tests_summary

# How many of the build's models the table names (result.json has them all).
SLOWEST_MODELS_SHOWN = 5


def _fmt(value, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}"


def write_json(result: dict, out: Path) -> Path:
    path = out / "result.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    return path


def table_lines(result: dict) -> list[str]:
    load = result.get("load", {})
    fresh = load.get("freshness_s") or {}
    batch = load.get("microbatch") or {}
    post = result.get("post_load", {})
    history = result.get("history", {})
    api = load.get("api_profile_lookup_ms") or {}
    machine = result.get("machine", {})
    lines = [
        f"c360 bench: mode {result.get('mode')}, read path {result.get('read_path')}, "
        f"{machine.get('cpus')} CPUs, load average at start "
        f"{', '.join(f'{x:.1f}' for x in machine.get('load_average_at_start', []))}",
        f"history            {_fmt(history.get('events'))} events, "
        f"{_fmt(history.get('customers'))} customers, {history.get('days')} days "
        f"(seeded in {_fmt(history.get('seed_seconds'), ' s', 1)}; served after "
        f"{_fmt(result.get('initial_load_seconds'), ' s', 1)})",
    ]
    for step in result.get("steps", []):
        f = step.get("freshness_s") or {}
        lines.append(
            f"load {step['rate']:>8,.0f}/s    freshness p50 {_fmt(f.get('p50'), ' s')}, "
            f"p95 {_fmt(f.get('p95'), ' s')}, p99 {_fmt(f.get('p99'), ' s')}, "
            f"max {_fmt(f.get('max'), ' s')} ({step.get('probes')} probes)"
        )
    if result.get("config", {}).get("rate") is None:
        lines.append(
            f"rate max           {_fmt(result.get('max_rate_within_target'))} events/s is the "
            f"highest step with freshness p50 <= {result['config'].get('target_p50_s')} s and "
            f"p95 <= {result['config'].get('target_p95_s')} s"
        )
    lines += [
        f"freshness (all)    p50 {_fmt(fresh.get('p50'), ' s')}, p95 "
        f"{_fmt(fresh.get('p95'), ' s')}, p99 {_fmt(fresh.get('p99'), ' s')}, max "
        f"{_fmt(fresh.get('max'), ' s')}; {load.get('probes')} probes, "
        f"{load.get('probes_never_visible')} never visible"
        + (
            f", {gone} for a customer the stream deleted meanwhile"
            if (gone := load.get("probes_customer_deleted"))
            else ""
        ),
        f"throughput         produced {_fmt(load.get('produced_events_per_s'), '/s', 0)}, "
        f"landed {_fmt(load.get('landed_events_per_s'), '/s', 0)} (sustained over the load)",
    ]
    if batch:
        lines.append(
            f"micro-batch        {batch['count']} batches, p50 "
            f"{_fmt(batch['duration_s']['p50'], ' s')}, "
            f"p95 {_fmt(batch['duration_s']['p95'], ' s')}"
            f"; p50 split extract {_fmt(batch['extract_s']['p50'], ' s')}, dbt "
            f"{_fmt(batch['dbt_s']['p50'], ' s')}, publish {_fmt(batch['publish_s']['p50'], ' s')}"
            f", checkpoint {_fmt(batch['checkpoint_s']['p50'], ' s')}"
            + (" (from the stream run's log)" if result.get("mode") == "dagster" else "")
        )
        slowest = list(batch.get("models_s_mean", {}).items())[:SLOWEST_MODELS_SHOWN]
        if slowest:
            lines.append(
                "  slowest models   "
                + ", ".join(f"{model} {seconds * 1000:.0f} ms" for model, seconds in slowest)
                + " (mean wall time per batch; models replayed side by side overlap)"
            )
    else:
        lines.append("micro-batch        none logged during the load")
    dagster = load.get("dagster")
    if dagster:
        shown = dagster.get("probe_to_dagster_report_s") or {}
        runs = ", ".join(f"{s} {n}" for s, n in sorted(dagster.get("stream_runs", {}).items()))
        launch = dagster.get("stream_run_launch_s") or {}
        lines.append(
            f"Dagster            probe -> its raw/weblogs materialization p50 "
            f"{_fmt(shown.get('p50'), ' s')}, p95 {_fmt(shown.get('p95'), ' s')} "
            f"({dagster.get('probes_reported')} probes); stream runs: {runs or 'none'} "
            f"(launch p50 {_fmt(launch.get('p50'), ' s')})"
        )
        tests = dagster.get("data_tests_during_load") or []
        lines.append(
            "  data tests       "
            + (
                "; ".join(
                    tests_summary(t["passed"], t["run"], t.get("not_passed") or {})
                    + f", from {t['began_s']:+.0f} s into the load "
                    f"for {t['seconds']:.1f} s"
                    for t in tests
                )
                or "none ran during the load"
            )
        )
    if api:
        lines.append(
            f"API profile lookup p50 {_fmt(api.get('p50'), ' ms')}, p99 "
            f"{_fmt(api.get('p99'), ' ms')} ({api.get('requests')} requests during the load, "
            f"{api.get('not_found')} deleted customers, {api.get('errors')} errors)"
        )
    catch_up = post.get("catch_up") or {}
    inc = post.get("incremental") or {}
    full = post.get("full_refresh") or {}
    lines += [
        f"catch-up           {_fmt(catch_up.get('landed_records'))} records landed and built "
        f"in {_fmt(catch_up.get('seconds'), ' s')} = {_fmt(catch_up.get('events_per_s'), '/s', 0)}",
        f"incremental        dbt {_fmt(inc.get('dbt_s'), ' s')} after {inc.get('new_events')} "
        f"new events vs full refresh {_fmt(full.get('dbt_run_s'), ' s')} of "
        f"{_fmt(post.get('warehouse_raw_rows'))} raw rows = "
        f"{_fmt((post.get('incremental_over_full') or 0) * 100, ' %', 1)}",
        "peak RSS           "
        + ", ".join(f"{k} {v:,.0f} MB" for k, v in (result.get("peak_rss_mb") or {}).items()),
    ]
    cpu = result.get("cpu_cores_during_load")
    if cpu:
        cpus = (result.get("machine") or {}).get("cpus")
        lines.append(
            f"CPU in the load    cores used of {cpus}: "
            + ", ".join(f"{name} {cores:.2f}" for name, cores in cpu.items() if cores >= 0.01)
            + f" (total {sum(cpu.values()):.2f})"
        )
    for t in result.get("targets", []):
        if t.get("met") is None:
            state = "not measured"
        elif t["met"]:
            state = "met"
        elif t.get("never_visible"):
            state = f"MISSED ({t['never_visible']} probes never visible)"
        else:
            state = f"MISSED (x{t['by']:.2f} of target)"
        lines.append(
            f"target             {t['name']}: {_fmt(t.get('value'))}{t.get('unit', '')} vs "
            f"{t['target']}{t.get('unit', '')} at {t['at']}: {state}"
        )
    lines += [f"note               {note}" for note in result.get("notes", [])]
    return lines


def plot(result: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = out / "freshness.png"
    window = result.get("load", {}).get("window") or [0, 0]
    t0 = window[0]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True,
                                      gridspec_kw={"height_ratios": [2, 1]})  # fmt: skip
    probes = [p for p in result.get("probes", []) if p["produced_at"] >= t0]
    seen = [(p["produced_at"] - t0, p["freshness_s"]) for p in probes if p["freshness_s"]]
    unseen = [p for p in probes if p["freshness_s"] is None]
    lost = [p["produced_at"] - t0 for p in unseen if not p.get("customer_deleted")]
    gone = [p["produced_at"] - t0 for p in unseen if p.get("customer_deleted")]
    if seen:
        top.plot(*zip(*seen, strict=True), ".", color="tab:blue", label="probe freshness")
    if lost:
        top.plot(lost, [0] * len(lost), "x", color="tab:red", label="never visible")
    if gone:
        top.plot(gone, [0] * len(gone), "x", color="tab:gray", label="customer deleted")
    config = result.get("config", {})
    for key, style, label in (
        ("target_p95_s", "--", "target p95"),
        ("target_p50_s", ":", "target p50"),
    ):
        if config.get(key) is not None:  # results written before the p50 target have none
            top.axhline(config[key], color="tab:red", linestyle=style, linewidth=1, label=label)
    top.set_ylabel("freshness (s)")
    top.set_ylim(bottom=0)
    top.set_title(
        f"c360 bench ({result.get('mode')}, read path {result.get('read_path')}): "
        "freshness of each probe and load"
    )
    rates = top.twinx()
    timeline = result.get("timeline") or {}
    for key, colour, label in (
        ("produced_per_s", "tab:gray", "produced events/s"),
        ("landed_per_s", "tab:green", "landed events/s"),
    ):
        series = [(s - t0, n) for s, n in timeline.get(key, [])]
        if series:
            rates.step(*zip(*series, strict=True), where="post", color=colour, alpha=0.6,
                       linewidth=0.8, label=label)  # fmt: skip
    rates.set_ylabel("events/s")
    handles = top.get_legend_handles_labels()
    more = rates.get_legend_handles_labels()
    top.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left", fontsize=8)
    batches = result.get("batches", [])
    if batches:
        x = [b["started_at"] - t0 for b in batches]
        bottom_acc = [0.0] * len(batches)
        colours = ("tab:orange", "tab:purple", "tab:cyan", "tab:gray")
        for key, colour in zip(BATCH_STEPS, colours, strict=True):
            values = [b[key] for b in batches]
            bottom.bar(x, values, bottom=bottom_acc, width=0.4, color=colour, label=key[:-2])
            bottom_acc = [a + v for a, v in zip(bottom_acc, values, strict=True)]
        bottom.legend(loc="upper left", fontsize=8)
        bottom.set_ylabel("micro-batch (s)")
    else:
        bottom.text(0.5, 0.5, "no micro-batch logged", ha="center",
                    transform=bottom.transAxes)  # fmt: skip
    for step in result.get("steps", []):
        for axis in (top, bottom):
            axis.axvline(step["start"] - t0, color="k", linewidth=0.5, alpha=0.3)
        top.text(step["start"] - t0, top.get_ylim()[1] * 0.95, f" {step['rate']:g}/s",
                 fontsize=8, va="top")  # fmt: skip
    bottom.set_xlabel("seconds since the load started")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
