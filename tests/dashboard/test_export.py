"""The static export (`python -m compute export`, dashboard.export): a folder that opens from disk with no
network, every section with content, and every store text shown as text, never as markup."""

from __future__ import annotations

import html.parser
import json
import subprocess
import sys
from pathlib import Path

import pytest

from compute.__main__ import build_parser
from dashboard import export
from testkit.browser import VIEWPORT, chromium
from testkit.study import write_study

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = '</script><img src=x onerror="alert(1)">'  # a method name (model ids are letters and digits)


class Tags(html.parser.HTMLParser):
    """Every start tag of a page with its attributes, and the text of its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag) -> None:
        self._in_script = False

    def handle_data(self, data) -> None:
        if self._in_script:
            self.scripts.append(data)


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory) -> Path:
    """The export of a small study with a method named in markup."""
    root = tmp_path_factory.mktemp("hostile")
    models = [("dense", "dense", 0.0, 0), ("odd", HOSTILE, 0.5, 0), ("lrr-a", "lrr", 0.9, 0)]
    store = write_study(root / "store", models=models, num_samples=24)
    export.export(store, root / "site", per_corruption=2)
    return root / "site"


@pytest.mark.slow  # over 3 s on a quiet machine (make check is the fast subset)
def test_the_export_shows_hostile_store_text_as_text(hostile_site) -> None:
    page = (hostile_site / "index.html").read_text()
    parsed = Tags()
    parsed.feed(page)
    assert [tag for tag, _ in parsed.tags if tag == "script"] == ["script"] * 4  # the bundle, 2 JSON, the code
    assert not any(name.startswith("on") for _, attributes in parsed.tags for name in attributes)
    assert not any(tag == "img" and attributes.get("src") == "x" for tag, attributes in parsed.tags)
    assert HOSTILE not in page and "<img src=x" not in page
    assert "&lt;/script&gt;&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page  # in the model table, escaped
    specs = json.loads(parsed.scripts[0])  # the JSON survives its escaping: the charts get the name intact
    assert json.dumps(HOSTILE) in json.dumps(specs)


def test_the_export_refuses_a_folder_that_is_not_an_earlier_export(hostile_site, tmp_path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code = export.main(["--store", str(hostile_site.parent / "store"), "--out", str(tmp_path)])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "is not an earlier export" in error
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert export.main(["--store", str(tmp_path / "missing"), "--out", str(tmp_path / "site")]) == 2
    assert "no store directory" in capsys.readouterr().err


@pytest.mark.browser
def test_the_export_opens_from_disk_with_every_section_and_no_request_outside(dashboard_store, tmp_path) -> None:
    site = tmp_path / "site"
    ran = subprocess.run([sys.executable, "-m", "compute", "export", "--store", str(dashboard_store), "--out",
                          str(site), "--fragile", "3"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert "MB in" in ran.stdout
    folder = site.resolve().as_uri() + "/"
    requests, blocked = [], []

    def route(handled) -> None:  # only the folder's own files may load; anything else is stopped and recorded
        if handled.request.url.startswith("file://"):
            handled.continue_()
        else:
            blocked.append(handled.request.url)
            handled.abort()

    with chromium() as browser:
        page = browser.new_page(viewport=VIEWPORT)
        page.route("**/*", route)
        page.on("request", lambda request: requests.append(request.url))
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(folder + "index.html")
        page.wait_for_function("""() => [...document.querySelectorAll('.chart')].every(
            chart => chart.querySelector('svg.marks, canvas'))""", timeout=60_000)
        sections = page.locator("[data-section]")
        names = sections.evaluate_all("nodes => nodes.map(node => node.dataset.section)")
        assert names == list(export.SECTIONS)
        for name in names:
            content = page.locator(f"[data-section={name}]").locator("svg.marks, tbody tr, figure img")
            assert content.count() > 0, f"section {name} has no content"
        assert page.locator("#gallery img").count() > 0
        assert all(image for image in page.locator("#gallery img").evaluate_all(
            "images => images.map(image => image.complete && image.naturalWidth > 0)"))
        page.locator("nav a[href='#gallery']").click()
        assert page.evaluate("location.hash") == "#gallery"
        cells = page.locator("#chart-matrix svg.marks g.mark-rect path")
        for index in range(cells.count()):  # a corrupted setting's cell opens its corruption's gallery
            cells.nth(index).click()
            if page.evaluate("location.hash").startswith("#gallery-"):
                break
        assert page.locator(page.evaluate("location.hash") + " + .gallery figure").count() > 0
        page.locator("#chart-lineage svg.marks g.mark-symbol path").nth(1).click()  # a model -> its table row
        page.wait_for_function("location.hash.startsWith('#model-')")
        assert page.locator(page.evaluate("location.hash")).locator("td").count() > 0
        page.close()
    assert errors == []
    assert blocked == []
    assert requests and all(url.startswith(folder) for url in requests), [u for u in requests if not u.startswith(folder)]


@pytest.mark.parametrize("count", ["0", "101", "many"])
def test_the_gallery_size_is_bounded_on_the_command_line(count, capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "--store", "s", "--out", "site", "--fragile", count])
    assert "--fragile" in capsys.readouterr().err
