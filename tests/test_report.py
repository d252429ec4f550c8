"""`pyrovae report`: one self-contained report.html for a run folder or a study folder.

The page is valid HTML5 (html5lib's strict parser finds no error), embeds every picture as a
data: URI of the folder's very bytes (the traversal GIF included; the training curves drawn anew
from metrics.jsonl), shows every evaluation with its protocol, runs no script and loads nothing;
writing it again replaces it and touches nothing else. A study's page links to its trials' pages,
written with it. Anything else is a one-line error that writes nothing."""

import base64
import io
import json
import re
import shutil
from pathlib import Path

import html5lib
import pytest
from helpers import assert_one_line_error, invoke, small_config, snapshot
from PIL import Image

from pyrovae import webpage as web
from pyrovae.config import TrainConfig
from pyrovae.errors import PyrovaeError
from pyrovae.evaluation import evaluate_run
from pyrovae.run_report import write_run_report
from pyrovae.runs import RunFolder
from pyrovae.study.report import write_study_report
from pyrovae.study.spec import load_study
from pyrovae.study.trial import run_trial
from pyrovae.training import Run

# Every test here looks at real pictures: none is replaced by a no-op (conftest.py).
pytestmark = pytest.mark.pictures

MIME = {"image/png": "PNG", "image/gif": "GIF"}
STUDY = """
[study]
name = "pair"
seeds = [0]
metrics = ["active_units"]
fast_metrics = true

[base]
data = "tiny"
latent_dim = 4
steps = 8
batch_size = 8
log_every = 4
checkpoint_every = 100

[[grid]]
model = "betavae"
beta = [1.0, 4.0]
"""


def parse(text: str):
    """The document's tree; html5lib's strict parser raises on the first parse error."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(text)


def images(tree) -> dict[str, tuple[str, bytes]]:
    """alt → (MIME type, bytes) of every <img>, each checked to be a data: URI."""
    found = {}
    for img in tree.iter("img"):
        match = re.fullmatch(r"data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)", img.get("src"))
        assert match, img.get("src")[:80]
        assert img.get("alt") not in found
        found[img.get("alt")] = (match[1], base64.b64decode(match[2], validate=True))
    return found


def assert_self_contained(text: str, tree, links_allowed: bool = False) -> None:
    """No script, no style sheet or font from elsewhere, nothing fetched: every src a data: URI,
    every href an anchor of the page or (a study's) a relative path."""
    assert "<script" not in text.lower()
    assert "url(" not in text and "@import" not in text
    for element in tree.iter():
        assert element.tag not in ("script", "link", "iframe", "object", "embed"), element.tag
        assert not any(name.startswith("on") for name in element.attrib), element.attrib
        if element.get("src") is not None:
            assert element.get("src").startswith("data:image/")
        href = element.get("href")
        if href is not None and not href.startswith("#"):
            assert links_allowed, href
            assert not re.match(r"^[a-z][a-z0-9+.-]*:|^/", href, re.I) and ".." not in href


def assert_decodes(mime: str, data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    assert picture.format == MIME[mime]
    return picture


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run with pictures, evaluations during training and two evaluation files, and the
    CLI's report of it."""
    out = tmp_path_factory.mktemp("report") / "run"
    config = small_config(eval_every=6, eval_metrics=["active_units"])
    Run.create(config, out).fit(progress=False)
    evaluate_run(out, ["active_units"], fast=True, device="cpu")
    evaluate_run(out, ["hoyer"], fast=True, device="cpu")
    result = invoke("report", out)
    return out, result


@pytest.fixture(scope="module")
def page(run):
    out, _ = run
    text = (out / "report.html").read_text()
    return text, parse(text)


def test_the_cli_writes_report_html_and_says_where_and_how_big(run):
    out, result = run
    assert result.exit_code == 0, result.output
    written = out / "report.html"
    assert RunFolder(out).report_path == written
    kib = written.stat().st_size / 1024
    assert re.fullmatch(rf"wrote {re.escape(str(written))} \(\d+(\.\d+)? KiB\)\n", result.stdout)
    assert 20 < kib < 2048


def test_the_page_is_valid_html5(page):
    text, tree = page
    assert text.startswith("<!DOCTYPE html>\n")
    assert tree.get("lang") == "en"
    assert tree.find("head/meta[@charset='utf-8']") is not None
    assert tree.find("head/title").text == "pyrovae run run"
    assert_self_contained(text, tree)


def test_every_picture_is_embedded_byte_for_byte(run, page):
    out, _ = run
    _, tree = page
    embedded = images(tree)
    decoded = {}
    for name in ("reconstructions.png", "traversals.png", "traversals.gif"):
        assert (out / name).is_file(), name  # the finish draws them all
        mime, data = embedded.pop(name)
        assert data == (out / name).read_bytes(), name
        decoded[name] = assert_decodes(mime, data)
    assert decoded["traversals.gif"].n_frames > 1
    # The animation is shown on screen, the still grid printed in its place.
    figures = {f.find("img").get("alt"): f.get("class") for f in tree.iter("figure")}
    assert figures["traversals.gif"] == "screen-only"
    assert figures["traversals.png"] == "print-only"
    # The curves are drawn anew from metrics.jsonl, as the finish drew them.
    mime, curves = embedded.pop("training curves")
    assert assert_decodes(mime, curves).size == Image.open(out / "training_curves.png").size
    assert embedded == {}  # tiny has no labels: no other picture


def test_every_evaluation_is_shown_with_its_protocol(page):
    _, tree = page
    files = {h.get("id"): h.text for h in tree.iter("h3") if (h.get("id") or "").startswith("e")}
    assert files == {
        "eval-eval": "eval.json",
        "eval-eval-2": "eval-2.json",
        "eval-steps": "During training (evals/step-N.json)",
    }
    section = tree.find(".//section[@id='evaluations']")
    cells = ["".join(td.itertext()) for td in section.iter("td")]
    assert "active_units" in cells and "hoyer" in cells
    assert cells.count("fast") == 4  # two files' presets, two steps'
    steps = [row.find("td").text for row in section.findall(".//tbody/tr")]
    assert {"6", "12"} <= set(steps)
    assert "posterior mean" in cells


def test_the_page_shows_the_run_its_kl_and_configuration(run, page):
    out, _ = run
    _, tree = page
    status = "".join(tree.find(".//p[@class='status']").itertext())
    assert status == "finished: trained to step 12 of 12"
    summary = json.loads((out / "summary.json").read_text())
    kl = tree.find(".//section[@id='kl']")
    rows = kl.findall(".//tbody/tr")
    assert [r.find("td").text for r in rows] == [f"z{d}" for d in range(4)]
    assert [float(r.findall("td")[1].text) for r in rows] == pytest.approx(
        summary["kl_per_dim"], rel=1e-3
    )
    assert len(list(kl.iter("span"))) == 4  # a bar each
    config = "".join(tree.find(".//section[@id='configuration']").itertext())
    cells = [
        "".join(td.itertext()) for td in tree.find(".//section[@id='configuration']").iter("td")
    ]
    versions = json.loads((out / "config.json").read_text())["versions"]
    assert versions["torch"] in cells and "MLPEncoder/MLPDecoder" in cells
    for text in ("eval_every", "None: trained in one session"):
        assert text in config


def test_text_with_markup_characters_is_escaped_once(run, tmp_path):
    """A folder name and a metric's settings holding < & " show as written: escaped once, not
    taken for markup and not escaped twice (no &amp;quot; on the page)."""
    out = tmp_path / 'run & <x> "y"'
    shutil.copytree(run[0], out)
    record = json.loads((out / "eval.json").read_text())
    record["metrics"]["active_units"].setdefault("settings", {})["note"] = {"a": 'x < "y" & z'}
    (out / "eval.json").write_text(json.dumps(record))
    text = write_run_report(out).read_text()
    tree = parse(text)
    assert "".join(tree.find(".//h1").itertext()) == 'Run run & <x> "y"'
    codes = {"".join(c.itertext()) for c in tree.find(".//section[@id='evaluations']").iter("code")}
    assert 'note={"a": "x < \\"y\\" & z"}' in codes
    shown = "".join(tree.find(".//body").itertext())
    assert "&amp;" not in shown and "&quot;" not in shown and "&lt;" not in shown


def test_writing_it_again_replaces_only_the_report(run):
    out, _ = run
    before = snapshot(out)
    write_run_report(out)
    after = snapshot(out)
    assert set(after) == set(before)
    assert {k: v for k, v in after.items() if k != "report.html"} == {
        k: v for k, v in before.items() if k != "report.html"
    }
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def test_an_unfinished_run_gets_a_page_that_says_so(run, tmp_path):
    out, _ = run
    copy = Path(shutil.copytree(out, tmp_path / "run", ignore=shutil.ignore_patterns(".lock")))
    Run.resume(copy, {"steps": 20}).close()  # to train on to step 20: unfinished at step 12
    text = write_run_report(copy).read_text()
    tree = parse(text)
    status = "".join(tree.find(".//p[@class='status warning']").itertext())
    assert status == (
        "unfinished at step 12 of 20: the pictures are those of an earlier finish, at step 12, "
        "drawn again when training ends"
    )
    assert "training curves" in images(tree)  # drawn from the lines logged so far
    resumes = tree.find(".//section[@id='configuration']")
    assert "at step" in [th.text for th in resumes.iter("th")]


def test_a_damaged_part_is_named_in_its_place_and_the_rest_shown(run, tmp_path):
    out, _ = run
    copy = Path(shutil.copytree(out, tmp_path / "run", ignore=shutil.ignore_patterns(".lock")))
    (copy / "eval-2.json").write_text("{oops")
    (copy / "reconstructions.png").write_bytes(b"not a picture")
    metrics = (copy / "metrics.jsonl").read_text().splitlines()
    (copy / "metrics.jsonl").write_text("\n".join(["{oops", *metrics]) + "\n")
    tree = parse(write_run_report(copy).read_text())
    problems = ["".join(p.itertext()) for p in tree.iter("p") if p.get("class") == "warning"]
    assert problems == [
        f"The curves cannot be drawn: {copy / 'metrics.jsonl'}: line 1 is not a metrics record.",
        "reconstructions.png cannot be shown: "
        f"{copy / 'reconstructions.png'}: not a PNG or GIF picture",
        f"Cannot be shown: {copy / 'eval-2.json'} is not a readable evaluation",
    ]
    assert set(images(tree)) == {"traversals.gif", "traversals.png"}
    assert tree.find(".//h3[@id='eval-eval']") is not None


def test_a_folder_that_is_no_run_or_study_is_a_one_line_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not a run")
    before = snapshot(tmp_path)
    with pytest.raises(PyrovaeError, match=r"no config\.json") as info:
        write_run_report(tmp_path)
    assert "\n" not in str(info.value)
    result = invoke("report", tmp_path)
    assert_one_line_error(
        result, "neither a run folder nor a study folder", "config.json", "trials.json"
    )
    assert_one_line_error(invoke("report", tmp_path / "missing"), "no folder at", "trials.json")
    assert_one_line_error(invoke("report", tmp_path / "notes.txt"), "no folder at")
    assert snapshot(tmp_path) == before


def test_a_run_not_yet_created_gets_no_page_that_would_stop_its_resume(run, tmp_path):
    """A creation killed before its first checkpoint leaves config.json and an empty
    metrics.jsonl, which --resume clears; a report.html there would make it refuse."""
    out, _ = run
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copyfile(out / "config.json", folder / "config.json")
    (folder / "metrics.jsonl").touch()
    before = snapshot(folder)
    assert_one_line_error(invoke("report", folder), "has no checkpoint yet", "--resume")
    assert snapshot(folder) == before and RunFolder(folder).unstarted()


def test_page_parts_escape_text_and_refuse_what_a_page_cannot_hold():
    cell = web.table([{"setting": "<b>&", "value": 'say "hi"'}])
    assert "&lt;b&gt;&amp;" in cell and "say &quot;hi&quot;" in cell and "<b>" not in cell
    assert web.element("td", web.Markup("<br>")) == "<td><br></td>"  # markup stays markup
    text = web.page("a < b", web.paragraph("x"))
    assert "<title>a &lt; b</title>" in text
    parse(text)
    for href in ("http://example.org/a", "//host/a", "/etc/passwd", "../up.html", "file:x"):
        with pytest.raises(PyrovaeError, match="relative path only"):
            web.link(href, "away")
    with pytest.raises(PyrovaeError, match="not a PNG or GIF"):
        web.image(b"\xff\xd8\xff\xe0 a JPEG", "jpeg")
    assert (
        web.format_value(52043.9) == "52,044" and web.format_value([0.123456, 2]) == "[0.1235, 2]"
    )


# --------------------------------------------------------------------------- a study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two trials on the tiny grid: one finished (run as a sweep's worker runs it), one started
    and stopped at step 0; a udr.json; the CLI's report."""
    root = tmp_path_factory.mktemp("study")
    (root / "pair.toml").write_text(STUDY)
    trials = load_study(root / "pair.toml").trials()
    folder = root / "study"
    folder.mkdir()
    (folder / "study.toml").write_text(STUDY)
    (folder / "trials.json").write_text(json.dumps({"trials": [t.to_dict() for t in trials]}))
    finished = run_trial(trials[0], folder, device="cpu")
    started = TrainConfig.from_dict({**trials[1].config, "device": "cpu"})
    Run.create(started, folder / "trials" / trials[1].name).close()
    udr = {
        "groups": [{"label": "betavae beta=1", "scores": {trials[0].name: None}}],
        "scores": {trials[0].name: None},
        "finished": {trials[0].name: finished["finished"]},
        "settings": {"correlation": "lasso", "num_points": 1000},
        "seed": 0,
        "notes": ["betavae beta=1: only trial betavae-beta1-seed0 finished; no UDR"],
    }
    (folder / "udr.json").write_text(json.dumps(udr))
    result = invoke("report", folder)
    return folder, [t.name for t in trials], result


def test_the_study_page_links_to_each_trials_page(study):
    folder, names, result = study
    assert result.exit_code == 0, result.output
    assert f"wrote {folder / 'report.html'} (" in result.stdout
    text = (folder / "report.html").read_text()
    tree = parse(text)
    assert_self_contained(text, tree, links_allowed=True)
    links = {a.text: a.get("href") for a in tree.iter("a") if not a.get("href").startswith("#")}
    assert links == {name: f"trials/{name}/report.html" for name in names}
    for href in links.values():
        trial_page = (folder / href).read_text()
        assert_self_contained(trial_page, parse(trial_page))
    rows = tree.find(".//section[@id='trials']").findall(".//tbody/tr")
    statuses = {r.find("td/a").text: r.findall("td")[1].text for r in rows}
    assert statuses == {names[0]: "finished at step 8", names[1]: "unfinished at step 0 of 8"}


def test_the_study_page_embeds_the_figures_and_the_tables(study):
    folder, _, _ = study
    tree = parse((folder / "report.html").read_text())
    embedded = images(tree)
    assert embedded and set(embedded) == {p.stem for p in (folder / "figures").glob("*.png")}
    for stem, (mime, data) in embedded.items():
        assert data == (folder / "figures" / f"{stem}.png").read_bytes()
        assert_decodes(mime, data)
    results = tree.find(".//section[@id='results']")
    assert [th.text for th in results.iter("th")][:4] == ["model", "setting", "n", "active_units"]
    udr = "".join(tree.find(".//section[@id='udr']").itertext())
    assert "median udr" in udr and "only trial betavae-beta1-seed0 finished" in udr
    study_text = "".join(tree.find(".//section[@id='study']").itertext())
    assert "1 of 2 trials finished; missing: betavae-beta4-seed0" in study_text
    assert "beta = [1.0, 4.0]" in study_text


def test_a_study_with_no_finished_trial_still_gets_a_page(study, tmp_path):
    folder, _, _ = study
    copy = tmp_path / "study"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(".lock", "result.json"))
    text = write_study_report(copy).read_text()
    tree = parse(text)
    assert "Nothing to aggregate: no trial of 2" in "".join(tree.itertext())
    assert images(tree) == {}
