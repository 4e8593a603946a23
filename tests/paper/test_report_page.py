"""The paper report page, rendered by a real browser (headless Chromium) and looked at.

A short paper run writes the report; Chromium loads the page with a probe script appended
that measures the laid-out page: which sections are there, whether every plot image loaded,
and whether anything is wider than the window or cut at its own edge (the long-lines bug).
``--dump-dom`` returns the DOM after load, probe results included; ``--screenshot`` takes a
picture, which the test checks is a real, non-blank page.

Without ``chromium`` on PATH these tests skip, unless ``SG_TEST_BROWSER_REQUIRED`` is set
(``.ci/run`` installs Debian's ``chromium`` and sets it): then they fail.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from safeguard.paper import PaperConfig, default_plan, paper_policy, run_paper
from safeguard.paper._report import REPORTING

WIDTH, HEIGHT = 1280, 900
NARROW = 760
SECTIONS = ("summary", "costs", "faults", "kill-switch", "plots", "trades", "fills", "policy",
            "decisions")  # fmt: skip
PLOTS = ("equity.png", "drawdown.png", "price.png", "liquidation.png", "refusals.png",
         "health.png", "events.png")  # fmt: skip

_PROBE = """
<script>
window.addEventListener("load", () => {
  const width = document.documentElement.clientWidth;
  const cut = [];
  const wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (el.id === "probe" || el.tagName === "SCRIPT") continue;
    const style = getComputedStyle(el);
    const scrolls = el.closest(".scroll") !== null;
    if (!scrolls && el.getBoundingClientRect().right > width + 0.5) wide.push(el.tagName);
    // Content wider than its own box is cut there (hidden) or behind a scroll bar (auto).
    if (style.overflowX !== "visible" && el.scrollWidth > el.clientWidth + 1) {
      cut.push(el.tagName + (el.parentElement.id ? "#" + el.parentElement.id : ""));
    }
  }
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    width: width,
    page_width: document.documentElement.scrollWidth,
    sections: [...document.querySelectorAll("section[id]")].map((s) => s.id),
    images: [...document.images].map((i) => [i.getAttribute("src"), i.naturalWidth,
                                              i.getBoundingClientRect().width]),
    wide: wide,
    cut: cut,
    policy_keys: document.querySelectorAll("#policy code").length,
    fills: document.querySelectorAll("#fills tr").length - 1,
    trades: document.querySelectorAll("#trades tr").length - 1,
  });
  document.body.appendChild(probe);
});
</script>
"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "headless Chromium is not installed (apt-get install chromium)"
        if os.environ.get("SG_TEST_BROWSER_REQUIRED"):
            pytest.fail(f"SG_TEST_BROWSER_REQUIRED is set but {reason}")
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not REPORTING:
        pytest.skip("the report extra (matplotlib, jinja2) is not installed")
    out = tmp_path_factory.mktemp("report")
    duration = 9 * 3600.0  # past the 8-hour funding time
    config = PaperConfig(
        policy=paper_policy(None, out / "state"),
        faults=default_plan(duration, ["BTCUSDT"], seed=7),
        seed=7,
        duration_s=duration,
        bar_s=120.0,
    )
    result = run_paper(config, out)
    assert result.html == out / "index.html"
    return out


def _browse(chromium: str, page: Path, *args: str, width: int = WIDTH) -> str:
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--allow-file-access-from-files", f"--window-size={width},{HEIGHT}",
         "--virtual-time-budget=10000", *args, page.as_uri()],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _probed(chromium: str, report: Path, width: int) -> dict[str, object]:
    probed = report / f"probed-{width}.html"
    page = (report / "index.html").read_text(encoding="utf-8")
    probed.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    dom = _browse(chromium, probed, "--dump-dom", width=width)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.DOTALL)
    assert found is not None, "the probe did not run: the page never finished loading"
    return dict(json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")))


@pytest.mark.slow
@pytest.mark.parametrize("width", [WIDTH, NARROW])
def test_the_report_lays_out_in_a_browser_without_cutting_anything(
    report: Path, width: int
) -> None:
    chromium = _chromium()
    probe = _probed(chromium, report, width)
    assert probe["sections"] == list(SECTIONS)
    images = probe["images"]
    assert isinstance(images, list)
    assert [src for src, _, _ in images] == list(PLOTS)
    assert all(natural > 0 for _, natural, _ in images), images  # every plot loaded
    assert all(shown <= probe["width"] for _, _, shown in images), images  # scaled to fit
    # Nothing sticks out of the window (tables scroll in their own box) and nothing is cut.
    assert probe["page_width"] == probe["width"]
    assert probe["wide"] == []
    assert probe["cut"] == []
    assert probe["policy_keys"] > 40  # the policy in full, key by key
    assert probe["fills"] > 0
    assert probe["trades"] > 0


@pytest.mark.slow
def test_a_screenshot_of_the_report_shows_a_page(report: Path) -> None:
    """The picture a person looks at: the right size, and not blank."""
    import matplotlib.image

    chromium = _chromium()
    shot = report / "screenshot.png"
    _browse(chromium, report / "index.html", f"--screenshot={shot}")
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    grey = pixels[..., :3].mean(axis=2)
    assert (grey < 0.5).mean() > 0.01  # text and plot lines, not an empty white page
    assert grey.std() > 0.05


# --- the plots and tables behind the page ---------------------------------------------------


@pytest.fixture(scope="module")
def records(report: Path) -> list[dict[str, object]]:
    from safeguard.paper._journal import read_journal

    return list(read_journal(report / "journal.jsonl"))


def test_no_legend_sits_over_the_data(records: list[dict[str, object]]) -> None:
    import matplotlib.pyplot as plt

    from safeguard.paper._report import _PLOTS

    start = min(float(r["t"]) for r in records if r["kind"] == "start")  # type: ignore[arg-type]
    legends = 0
    for name, draw in _PLOTS:
        figure = draw(records, start)
        try:
            figure.canvas.draw()
            for axes in figure.axes:
                legend = axes.get_legend()
                if legend is None:
                    continue
                legends += 1
                box, plot = legend.get_window_extent(), axes.get_window_extent()
                assert box.x0 >= plot.x1 or box.y1 <= plot.y0, f"{name}: legend over the data"
        finally:
            plt.close(figure)
    assert legends >= len(_PLOTS)


def test_the_two_runs_stops_are_drawn_in_two_clear_colours(
    records: list[dict[str, object]],
) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    from safeguard.paper._report import _price

    figure = _price(records, min(float(r["t"]) for r in records if r["kind"] == "start"))  # type: ignore[arg-type]
    try:
        lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
        stops = [lines["guarded stop"], lines["naive stop"]]
        others = [lines[label] for label in ("guarded liq.", "naive liq.", "mark")]
        for stop in stops:
            assert stop.get_alpha() in (None, 1.0)  # opaque: overlapping lines do not blend
        first, second = (to_rgb(stop.get_color()) for stop in stops)
        assert sum(abs(a - b) for a, b in zip(first, second, strict=True)) > 0.6
        for stop in stops:
            for other in others:
                assert to_rgb(stop.get_color()) != to_rgb(other.get_color())
    finally:
        plt.close(figure)


def test_the_report_shows_the_peak_the_drawdown_trigger_used(
    records: list[dict[str, object]], report: Path
) -> None:
    from safeguard.paper._report import report_data
    from safeguard.paper._summary import summarize_all

    data = report_data(records, summarize_all(records))
    kills = [r for r in records if r["kind"] == "kill" and r["run"] == "guarded"]
    assert kills, "the demo's drawdown trigger should trip in this run"
    # The trigger names its peak in its reason; the report shows the same number.
    named = [re.search(r"equity peak ([\d,.]+)", str(k["reason"])) for k in kills]
    assert [f"{peak:,.2f}" for _, peak, _ in data.peaks] == [m.group(1) for m in named if m]
    page = (report / "index.html").read_text(encoding="utf-8")
    for _, peak, state in data.peaks:
        assert f"{peak:,.2f}" in page
        assert state in page


def test_trades_and_costs_add_up_to_the_fills(records: list[dict[str, object]]) -> None:
    from safeguard.paper._report import report_data
    from safeguard.paper._summary import summarize_all

    data = report_data(records, summarize_all(records))
    for costs in data.costs:
        fills = [r for r in records if r["kind"] == "fill" and r["run"] == costs.run]
        trades = [t for t in data.trades if t.run == costs.run]
        assert costs.fees == pytest.approx(sum(float(f["fee"]) for f in fills))  # type: ignore[arg-type]
        assert sum(t.fees for t in trades) == pytest.approx(costs.fees)
        assert sum(t.pnl for t in trades) == pytest.approx(costs.realized_pnl)
        assert sum(t.fills for t in trades) >= len(fills)  # a flip counts in two trades
        funding = [float(r["amount"]) for r in records if r["kind"] == "funding"  # type: ignore[arg-type]
                   and r["run"] == costs.run]  # fmt: skip
        assert costs.funding_received - costs.funding_paid == pytest.approx(sum(funding))
    assert any(c.funding_payments for c in data.costs)  # nine hours hold a funding time


def test_a_trade_that_flips_the_position_closes_one_and_opens_the_next() -> None:
    from safeguard.paper._report import FillRow, _trades

    def fill(at: float, side: str, qty: float, price: float, pnl: float = 0.0) -> FillRow:
        return FillRow("naive", at, "BTC/USDT:USDT", side, qty, price, 1.0, pnl)

    fills = [
        fill(1, "buy", 1.0, 100.0),
        fill(2, "buy", 1.0, 110.0),
        fill(3, "sell", 3.0, 120.0, pnl=30.0),  # closes the long 2, opens a short 1
        fill(4, "buy", 1.0, 115.0, pnl=5.0),
    ]
    trades = [(t.side, t.qty, t.entry, t.exit, t.opened_h, t.closed_h, t.pnl)
              for t in _trades(fills, "naive")]  # fmt: skip
    assert trades == [
        ("long", 2.0, 105.0, 120.0, 1, 3, 30.0),
        ("short", 1.0, 120.0, 115.0, 3, 4, 5.0),
    ]


def test_the_kill_switch_band_runs_from_the_trip_to_the_end(
    records: list[dict[str, object]],
) -> None:
    from safeguard.paper._report import trading_stretches

    start = min(float(r["t"]) for r in records if r["kind"] == "start")  # type: ignore[arg-type]
    stretches = trading_stretches(records, start)
    kill = next(r for r in records if r["kind"] == "kill" and r["run"] == "guarded")
    engaged = [s for s in stretches if s[0] != "ACTIVE"]
    assert [state for state, _, _ in engaged] == [kill["state"]]  # the demo never resumes
    _, begin, end = engaged[0]
    assert begin == pytest.approx((float(kill["t"]) - start) / 3600.0)  # type: ignore[arg-type]
    last_bar = max(float(r["t"]) for r in records if r["kind"] == "bar")  # type: ignore[arg-type]
    assert end == pytest.approx((last_bar - start) / 3600.0)
    # The stretches tile the run: each begins where the one before it ended.
    assert all(a[2] <= b[1] for a, b in itertools.pairwise(stretches))
