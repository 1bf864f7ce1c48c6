"""Look at the built docs in a headless Chromium: ``nox -s docs_screens``.

For every page of ``docs/_build/html`` this checks, at a 1280 px wide window, that
the page renders, that nothing scrolls sideways (the page itself, a code block, a
table, a signature) and that every image loads (the benchmark plot); it saves a
screenshot of each page in ``docs/_build/screens/`` for a person to look at.

It needs Chromium (Debian: ``apt-get install chromium``); without it, it says so and
exits 2. Run it after ``nox -s docs``; CI does not run it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: What the page reports once loaded: what scrolls sideways, which images failed.
PROBE = """
<script>
window.addEventListener("load", () => {
  const root = document.documentElement;
  const wide = [];
  if (root.scrollWidth > root.clientWidth + 1) {
    wide.push(`the page: ${root.scrollWidth} px in ${root.clientWidth} px`);
  }
  for (const el of document.querySelectorAll("pre, table, .table-wrapper, dt.sig")) {
    if (el.scrollWidth > el.clientWidth + 1 && el.offsetParent !== null) {
      const text = (el.textContent || "").trim().replace(/\\s+/g, " ").slice(0, 70);
      const size = `${el.scrollWidth} px in ${el.clientWidth} px`;
      wide.push(`${el.tagName.toLowerCase()} (${size}): ${text}`);
    }
  }
  const broken = [...document.images]
    .filter((img) => !(img.complete && img.naturalWidth > 0))
    .map((img) => img.getAttribute("src"));
  const report = document.createElement("script");
  report.type = "application/json";
  report.id = "screen-check";
  report.textContent = JSON.stringify({
    wide, broken, images: document.images.length, title: document.title,
  });
  document.body.appendChild(report);
});
</script>
"""
SKIP = {"genindex.html", "search.html", "py-modindex.html"}
#: Pages that must show at least one image (the benchmark plot).
NEEDS_IMAGES = {"performance.html"}


def find_chromium() -> str | None:
    """Return the Chromium (or Chrome) command, if installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


def chromium(command: str, profile: Path, width: int, height: int, *args: str) -> str:
    """Run headless Chromium with a fresh profile and return what it printed."""
    done = subprocess.run(  # noqa: S603 - the browser found on PATH, our own arguments
        [
            command, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", "--hide-scrollbars",
            f"--window-size={width},{height}", "--virtual-time-budget=5000", *args,
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def check_page(command: str, page: Path, shots: Path, width: int) -> list[str]:
    """Check one page and screenshot it; return its problems."""
    probe = page.with_name(f".screen-{page.name}")  # beside it, so relative links work
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    try:
        with tempfile.TemporaryDirectory() as profile:
            dom = chromium(command, Path(profile), width, 900, "--dump-dom", probe.as_uri())
        with tempfile.TemporaryDirectory() as profile:
            chromium(
                command, Path(profile), width, 2400,
                f"--screenshot={shots / page.with_suffix('.png').name}", page.as_uri(),
            )  # fmt: skip
    finally:
        probe.unlink()
    found = re.search(r'<script type="application/json" id="screen-check">(.*?)</script>', dom)
    if found is None:
        return ["did not render (no load event)"]
    report = json.loads(found[1])
    problems = [f"scrolls sideways: {what}" for what in report["wide"]]
    problems += [f"image does not load: {src}" for src in report["broken"]]
    if page.name in NEEDS_IMAGES and not report["images"]:
        problems.append("shows no image (the benchmark plot)")
    return problems


def main() -> int:
    """Check every page; print the problems; exit 1 if there are any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=HERE / "_build" / "html")
    parser.add_argument("--out", type=Path, default=HERE / "_build" / "screens")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    command = find_chromium()
    if command is None:
        print("docs_screens: needs Chromium (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    pages = sorted(p for p in args.html.glob("*.html") if p.name not in SKIP)
    if not pages:
        print(f"docs_screens: no pages in {args.html}: build them first", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for page in pages:
        problems = check_page(command, page, args.out, args.width)
        print(f"{'FAIL' if problems else 'ok  '} {page.name}")
        for problem in problems:
            print(f"     {problem}")
        failed += bool(problems)
    print(f"{len(pages) - failed} of {len(pages)} pages fine at {args.width} px; "
          f"screenshots in {args.out}")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
