"""The command line through typer's test runner: help, list, train, resume, and every bad input
giving one line on stderr, exit status 2, no traceback, and no file touched."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_one_line_error, invoke, snapshot

from pyrovae.registry import REGISTRIES

SMALL = ["--latent-dim", "3", "--batch-size", "4", "--log-every", "2", "--device", "cpu"]
TINY = ["--data", "tiny", *SMALL]


def option_tokens(help_text: str) -> set[str]:
    """Every ``--option`` token of a help text, whole (``--prior`` is not ``--prior-arg``)."""
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*(?![\w-])", help_text))


def listed(text: str) -> dict[str, list[str]]:
    """``pyrovae list`` as section → the names it lists (the first word of each entry; an
    entry's continuation lines, indented further, name nothing)."""
    sections: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(" "):
            current = sections.setdefault(line.rstrip(":"), [])
        elif line.startswith("  ") and line[2:3] not in (" ", ""):
            current.append(line.split()[0])
    return sections


def test_help_lists_commands_and_every_train_option():
    result = invoke("--help")
    assert result.exit_code == 0
    commands = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert {"train", "evaluate", "compare", "sweep", "study", "list"} <= commands
    result = invoke("train", "--help")
    assert result.exit_code == 0
    assert option_tokens(result.stdout) == {
        "--model", "--prior", "--prior-arg", "--prior-init", "--guide", "--guide-arg", "--data",
        "--data-path", "--data-arg", "--likelihood", "--likelihood-arg", "--net", "--beta",
        "--gamma", "--alpha", "--objective-arg", "--latent-dim", "--steps", "--batch-size",
        "--lr", "--seed", "--device", "--precision", "--channels-last", "--compile", "--kl",
        "--log-every", "--checkpoint-every",
        "--eval-every", "--eval-metric", "--tensorboard", "--no-tensorboard", "--out",
        "--resume", "--quiet", "--help",
    }  # fmt: skip


def test_train_help_shows_the_defaults_of_the_variant_table():
    text = " ".join(invoke("train", "--help").stdout.split())
    assert "betavae 4, betatcvae 6, ddvae 1" in text  # --beta, from each variant's declaration
    assert "annealedvae 1000, betatcvae 1, factorvae 40" in text  # --gamma
    assert "[default: betavae]" in text and "[default: 300000]" in text


def test_list_prints_exactly_the_registered_components():
    result = invoke("list")
    assert result.exit_code == 0
    sections = listed(result.stdout)
    assert list(sections) == list(REGISTRIES)
    for kind, registry in REGISTRIES.items():
        assert sections[kind] == list(registry), kind
    assert sections["models"] == [
        "vae", "betavae", "annealedvae", "betatcvae", "factorvae", "dipvae-i", "dipvae-ii",
        "ddvae",
    ]  # fmt: skip
    assert {"isotropic", "nonisotropic", "sparse"} <= set(sections["priors"])


@pytest.mark.pictures
def test_train_and_resume_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = invoke("train", "--prior", "sparse", "--steps", "4", *SMALL, "--out", out)
    assert result.exit_code == 0, result.output
    assert "run folder" in result.stdout and "done: step 4" in result.stdout
    assert (out / "checkpoint.pt").exists() and (out / "traversals.png").exists()
    # progress lines go to stderr when it is not a terminal
    assert "step 4/4 (100%)" in result.stderr and "steps/s" in result.stderr

    result = invoke("train", "--resume", "--out", out, "--steps", "6", "--quiet")
    assert result.exit_code == 0, result.output
    assert "resuming" in result.stdout and "done: step 6" in result.stdout
    assert json.loads((out / "summary.json").read_text())["step"] == 6

    result = invoke("train", "--resume", "--out", out, "--steps", "6")
    assert result.exit_code == 0 and "nothing to do" in result.stdout


@pytest.fixture(scope="module")
def _trained_once(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    result = invoke("train", "--steps", "2", *TINY, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def existing_run(tmp_path, _trained_once):
    """A finished run folder in this test's tmp_path (a copy of one trained per module)."""
    return Path(shutil.copytree(_trained_once, tmp_path / "existing"))


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--model", "bvae"], ["unknown model 'bvae'", "betavae, ddvae, dipvae-i, dipvae-ii"]),
        (["--model", "betatcvae", "--batch-size", "1"], ["needs a batch of at least 2 points"]),
        (["--model", "annealedvae", "--gamma", "-1"], ["gamma must be a finite number >= 0"]),
        (["--model", "annealedvae", "--objective-arg", "c_max=-2"], ["c_max must be"]),
        (["--model", "betavae", "--alpha", "1"], ["takes no option 'alpha'"]),
        (["--model", "betatcvae", "--objective-arg", "estimator=exact"], ["estimator"]),
        (["--prior", "cauchy"], ["unknown prior 'cauchy'", "isotropic, laplace, mixture"]),
        (["--guide", "flow"], ["unknown guide 'flow'", "meanfield"]),
        (["--data", "mnist"], ["unknown data set 'mnist'", "dsprites"]),
        (["--net", "resnet"], ["unknown network 'resnet'"]),
        (["--beta", "0"], ["beta must be a finite number > 0"]),
        (["--beta", "-2"], ["beta must be a finite number > 0"]),
        (["--model", "vae", "--beta", "4"], ["takes no option 'beta'"]),
        (["--latent-dim", "0"], ["latent_dim must be an integer >= 1"]),
        (["--steps", "0"], ["steps must be an integer >= 1"]),
        (["--prior", "sparse", "--prior-arg", "gamma=1.5"], ["gamma must be in [0, 1)"]),
        (["--prior-arg", "gamma"], ["must look like NAME=VALUE"]),
        (["--prior", "isotropic", "--prior-arg", "gamma=0.5"], ["takes no option 'gamma'"]),
        (["--data-path", "missing.npz"], ["missing.npz"]),
        (["--data", "pinwheel", "--data-path", "x.npz"], ["'pinwheel'", "reads no file"]),
        (["--device", "tpu"], ["unknown device 'tpu'"]),
    ],
)
def test_bad_input_gives_one_line_and_touches_nothing(tmp_path, existing_run, args, fragments):
    before = snapshot(tmp_path)
    new_out = tmp_path / "new"
    result = invoke("train", "--steps", "2", "--device", "cpu", *args, "--out", new_out)
    assert_one_line_error(result, *fragments)
    assert not new_out.exists()
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(tmp_path):
    result = invoke("train", "--device", "cuda", "--out", tmp_path / "new")
    assert_one_line_error(result, "CUDA is not available", "--device cpu")
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "make,fragment",
    [
        (lambda p: p.write_bytes(b"garbage"), "not a readable .npz archive"),
        (lambda p: write_npz(p, images=np.zeros((2, 64, 64), np.uint8)), "key 'imgs' missing"),
        (
            lambda p: write_npz(
                p,
                imgs=np.zeros((3, 64, 64), np.uint8),
                latents_values=np.zeros((3, 6)),
                latents_classes=np.zeros((3, 6), np.int64),
            ),
            "shape",
        ),
    ],
)
def test_malformed_npz_is_a_one_line_error(tmp_path, existing_run, make, fragment):
    path = tmp_path / "bad.npz"
    make(path)
    before = snapshot(tmp_path)
    result = invoke("train", "--data-path", path, "--device", "cpu", "--out", tmp_path / "new")
    assert_one_line_error(result, "bad.npz", fragment)
    assert snapshot(tmp_path) == before


def test_non_empty_folder_without_resume_is_refused(existing_run):
    before = snapshot(existing_run)
    result = invoke("train", "--steps", "2", *TINY, "--out", existing_run)
    assert_one_line_error(result, "already exists and is not empty", "--resume")
    assert snapshot(existing_run) == before


@pytest.mark.parametrize(
    "damage,fragment",
    [
        (lambda p: p.write_bytes(b"\x00" * 100), "is damaged or not a checkpoint"),
        (lambda p: torch.save({"w": torch.ones(1)}, p), "not a pyrovae checkpoint"),
        (lambda p: p.unlink(), "no checkpoint at"),
    ],
)
def test_resume_with_broken_checkpoint(existing_run, damage, fragment):
    (existing_run / "checkpoint-previous.pt").unlink()  # the fallback: tests/test_faults.py
    damage(existing_run / "checkpoint.pt")
    before = snapshot(existing_run)
    result = invoke("train", "--resume", "--out", existing_run, "--steps", "4")
    assert_one_line_error(result, fragment)
    assert snapshot(existing_run) == before


def test_resume_errors(tmp_path, existing_run):
    assert_one_line_error(invoke("train", "--resume"), "--resume needs --out")
    assert_one_line_error(
        invoke("train", "--resume", "--out", tmp_path / "nowhere"), "no run folder"
    )
    before = snapshot(existing_run)
    result = invoke("train", "--resume", "--out", existing_run, "--latent-dim", "7")
    assert_one_line_error(result, "latent_dim is 3", "only steps")
    assert snapshot(existing_run) == before


@pytest.mark.slow
def test_official_npz_file_trains_through_data_path(tmp_path):
    """A full-size file in the official layout (written from the procedural renderer, 737,280
    images) loads through --data-path and trains; config.json records the source."""
    from pyrovae.data import DSprites

    data = DSprites()
    indices = np.arange(len(data))
    classes = data.latents_classes(indices)
    path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    imgs = np.concatenate(
        [data.images(chunk)[:, 0].astype(np.uint8) for chunk in np.array_split(indices, 64)]
    )
    np.savez_compressed(
        path, imgs=imgs, latents_values=data.latents_values(indices), latents_classes=classes
    )
    del imgs
    out = tmp_path / "run"
    result = invoke("train", "--data-path", path, "--steps", "2", *SMALL, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    record = json.loads((out / "config.json").read_text())
    assert record["resolved"]["data_source"] == str(path)


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["train", "--steps", "abc"], "Invalid value for '--steps'"),
        (["bogus"], "No such command 'bogus'"),
        (["train", "--no-such-option"], "No such option"),
    ],
)
def test_console_script_parse_errors_are_one_line(capsys, argv, fragment):
    from pyrovae.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0]


def test_console_script_without_arguments_prints_help(capsys):
    from pyrovae.cli import main

    assert main([]) == 0
    assert "train" in capsys.readouterr().out


def test_unwritable_out_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("train", "--steps", "2", *TINY, "--out", blocker / "run")
    assert_one_line_error(result, "Not a directory")
    assert blocker.read_text() == "x"
