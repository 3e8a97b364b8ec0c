"""A plan (mcusim.plan.make_plan) as a table: text for the terminal, Markdown, CSV, or JSON."""
from __future__ import annotations

import csv
import io
import json

from .units import KB, kb

COLUMNS = ("layer", "op", "in -> out", "params", "act kB", "err kB", "weights kB", "grads kB", "optim kB",
           "qparams kB", "sparse kB", "MACs", "fwd cyc", "bwd_in cyc", "bwd_w cyc", "update cyc", "ms", "uJ",
           "MAC/cyc", "share")


def _round(value: float | None, digits: int):
    """Energy figures are None on a board without [power] figures: shown as '-'."""
    return "-" if value is None else round(value, digits)


def _energy(uj: float | None) -> str:
    return "no energy (the board gives no power figures)" if uj is None else f"{uj:.1f} uJ"


def _rows(plan: dict) -> list[list]:
    rows = []
    for r in plan["layers"]:
        s, c = r["sram"], r["cycles"]
        shape = f"{'x'.join(map(str, r['in']))} -> {'x'.join(map(str, r['out']))}"
        rows.append([r["name"], r["op"], shape, r["params"], *(round(s[k] / KB, 2) for k in
                     ("activations", "errors", "weights", "gradients", "optimiser", "qparams", "sparse")),
                     sum(r["macs"].values()), c["forward"], c["backward_input"], c["backward_weight"],
                     round(c["update_per_sample"]), round(r["ms"], 3), _round(r["uj"], 2),
                     round(r["mac_per_cycle"], 3) if r["mac_per_cycle"] else "-", f"{100 * r['share']:.1f}%"])
    return rows


TEXT_COLUMNS = ("layer", "op", "out", "params", "act+err kB", "param kB", "MACs", "fwd cyc", "bwd_in cyc",
                "bwd_w cyc", "update", "ms", "share")


def _text_rows(plan: dict) -> list[list]:
    """The terminal's narrower table: SRAM in two sums (the full breakdown is in md, csv and json)."""
    rows = []
    for r in plan["layers"]:
        s, c = r["sram"], r["cycles"]
        params_kb = sum(s[k] for k in ("weights", "gradients", "optimiser", "qparams", "sparse")) / KB
        rows.append([r["name"], r["op"], "x".join(map(str, r["out"])), r["params"],
                     round((s["activations"] + s["errors"]) / KB, 2), round(params_kb, 2), sum(r["macs"].values()),
                     c["forward"], c["backward_input"], c["backward_weight"], round(c["update_per_sample"]),
                     round(r["ms"], 2), f"{100 * r['share']:.1f}%"])
    return rows


def _summary(plan: dict) -> list[str]:
    st, fit = plan["step"], plan["fit"]
    lines = [f"model {plan['model']} ({plan['task']}), {plan['precision']}"
             f"{' sparse ' + str(plan['sparse']) if plan['sparse'] else ''}, batch {plan['batch']}, "
             f"{plan['board']} at {plan['hclk_mhz']:g} MHz",
             f"training step per sample: {st['cycles_per_sample']:,.0f} cycles = {st['ms_per_sample']:.2f} ms, "
             f"{_energy(st['uj_per_sample'])} (update amortised over the batch; with --batch 1: "
             f"{st['cycles_per_sample_batch1']:,.0f} cycles); task (input, loss, latent): {plan['task_cycles']:,} cycles",
             f"cross-check: the calls one by one sum to {st['per_call_sum_cycles']:,.0f} cycles, the step in one "
             f"call takes {st['whole_step_cycles']:,} ({100 * (st['per_call_sum_cycles'] / st['whole_step_cycles'] - 1):+.2f}%)",
             f"kernel scratch (shared, the largest *_buffer_size): {plan['sram_by_kind']['scratch'] / KB:.2f} kB; "
             f"task buffers (input, loss, latent): {plan['sram_by_kind']['task'] / KB:.2f} kB"]
    for what, f in (("SRAM", fit["sram"]), ("flash", fit["flash"])):
        terms = " + ".join(f"{k} {v:,} B" for k, v in f["terms"].items())
        verdict = "fits" if f["fits"] else f"does NOT fit: over by {f['over_by']:,} B ({kb(f['over_by'])})"
        lines.append(f"{what}: {terms} = {f['total']:,} B of {f['limit']:,} B ({kb(f['limit'])}): {verdict}")
    if plan["timing_memory_enlarged"]:
        lines.append(f"does not fit in {kb(fit['sram']['limit'])}; timing measured with memory enlarged")
    return lines + _provenance(plan)


def _provenance(plan: dict) -> list[str]:
    return [f"where the figures come from: {k}: {v}" for k, v in plan["provenance"].items()]


def _table(fmt: str, columns, rows: list[list], notes: list[str], provenance: dict, left: int) -> str:
    """rows under columns as csv (provenance rows after a blank one), md or aligned text (the first `left`
    columns left-aligned), followed by the notes."""
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        writer.writerows(rows)
        writer.writerow([])
        writer.writerows([["where the figures come from", k, v] for k, v in provenance.items()])
        return buf.getvalue()
    if fmt == "md":
        out = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        out += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
        return "\n".join(out + [""] + [f"- {line}" for line in notes]) + "\n"
    cells = [list(columns)] + [list(map(str, r)) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    table = ["  ".join(v.rjust(w) if j >= left else v.ljust(w) for j, (v, w) in enumerate(zip(row, widths)))
             for row in cells]
    return "\n".join(table + [""] + notes) + "\n"


def render(plan: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(plan, indent=1) + "\n"
    columns, rows = (TEXT_COLUMNS, _text_rows(plan)) if fmt == "text" else (COLUMNS, _rows(plan))
    return _table(fmt, columns, rows, _summary(plan), plan["provenance"], left=3)


COMPARE_COLUMNS = ("model", "precision", "board", "MHz", "params", "MACs/sample", "SRAM B", "SRAM limit B", "fits",
                   "cycles/sample", "ms/sample", "uJ/sample", "batch-1 ms/sample")


def render_comparison(plans: list[dict], fmt: str) -> str:
    """Several plans side by side, one row each (the what-if view)."""
    if fmt == "json":
        return json.dumps(plans, indent=1) + "\n"
    rows = []
    for p in plans:
        st, sram = p["step"], p["fit"]["sram"]
        fits = ("yes" if sram["fits"] and p["fit"]["flash"]["fits"] else
                "NO (timed with memory enlarged)" if p["timing_memory_enlarged"] else "NO")
        rows.append([p["model"], p["precision"] + (f" sparse {p['sparse']}" if p["sparse"] else ""), p["board"],
                     f"{p['hclk_mhz']:g}", sum(r["params"] for r in p["layers"]), st["macs_per_sample"],
                     sram["total"], sram["limit"], fits, round(st["cycles_per_sample"]), round(st["ms_per_sample"], 2),
                     _round(st["uj_per_sample"], 1),
                     round(1e3 * st["cycles_per_sample_batch1"] / (p["hclk_mhz"] * 1e6), 2)])
    return _table(fmt, COMPARE_COLUMNS, rows, _provenance(plans[0]), plans[0]["provenance"], left=4)
