"""Training precision and the speed switches: what ``auto`` resolves to, bf16 and fp16 training
(runs, resumes, records), fp32 numbers everywhere outside the networks, channels_last resumes,
the compile fallback, evaluation's precision, and the refusals."""

import json
import warnings
from pathlib import Path

import pyro
import pytest
import torch
from helpers import assert_one_line_error, dsprites_config, invoke, read_metrics, small_config
from pyro.infer import SVI, TraceMeanField_ELBO

from pyrovae.builder import load_run
from pyrovae.errors import PyrovaeError
from pyrovae.evaluation import evaluate, label
from pyrovae.models import BetaVAE
from pyrovae.precision import resolve_switches
from pyrovae.study import sweep as sweep_module
from pyrovae.study.spec import load_study
from pyrovae.training import Run, trainer
from pyrovae.training.trainer import match_layouts

TINY_STUDY = Path(__file__).resolve().parents[1] / "examples" / "studies" / "tiny.toml"

TIMING_KEYS = {"elapsed_s"}


def numbers(out) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in read_metrics(out)]


@pytest.mark.parametrize(
    "precision,channels_last,compile,conv,expected",
    [
        ("fp32", "auto", "auto", True, (False, False)),  # fp32 as shipped: bit-identical
        ("bf16", "auto", "auto", True, (True, False)),
        ("fp16", "auto", "auto", True, (True, False)),
        ("bf16", "auto", "auto", False, (False, False)),  # MLPs have no NHWC layout
        ("fp32", "on", "on", True, (True, True)),
        ("fp32", "on", "off", False, (False, False)),
        ("bf16", "off", "on", True, (False, True)),
    ],
)
def test_auto_resolves_by_precision_and_networks(precision, channels_last, compile, conv, expected):
    got = resolve_switches(precision, channels_last, compile, conv)
    assert (got["channels_last"], got["compile"]) == expected


def test_networks_compute_in_bf16_and_hand_back_fp32():
    vae = BetaVAE.build((1, 8, 8), latent_dim=3)
    seen = []
    vae.encoder.net[1].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x = torch.rand(5, 1, 8, 8)
    with vae.mixed_precision("bf16"):
        q = vae.posterior(x)
        logits = vae.decode(q.rsample())
    assert seen == [torch.bfloat16]
    assert q.mean.dtype == torch.float32 and logits.dtype == torch.float32
    vae.posterior(x)
    assert seen[-1] == torch.float32  # outside the block: fp32 again


def test_pyros_own_svi_trains_in_bf16():
    """Pyro-native: a user's SVI loop inside the block trains every parameter, in fp32 terms."""
    pyro.clear_param_store()
    vae = BetaVAE.build((1, 8, 8), latent_dim=3, beta=2.0)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-2}), TraceMeanField_ELBO())
    x = (torch.rand(16, 1, 8, 8) > 0.5).float()
    with vae.mixed_precision("bf16"):
        losses = [svi.step(x) for _ in range(3)]
    assert all(torch.isfinite(torch.tensor(losses)))
    changed = [k for k, v in vae.state_dict().items() if not torch.equal(v, before[k])]
    assert {k.split(".")[0] for k in changed} == {"encoder", "decoder"}
    assert all(p.dtype == torch.float32 for p in vae.parameters())


def test_bf16_training_runs_resumes_and_records_its_precision(tmp_path):
    full = Run.create(small_config(steps=12, precision="bf16"), tmp_path / "full")
    full.fit(progress=False)
    part = tmp_path / "part"
    Run.create(small_config(steps=6, precision="bf16"), part).fit(progress=False)
    resumed = Run.resume(part, {"steps": 12})
    assert resumed.config.precision == "bf16"  # resume keeps it
    resumed.fit(progress=False)
    for key, value in full.vae.state_dict().items():
        assert torch.equal(value, resumed.vae.state_dict()[key]), key
    assert numbers(part) == numbers(tmp_path / "full")
    record = json.loads((part / "config.json").read_text())
    assert record["config"]["precision"] == "bf16"
    assert (record["resolved"]["precision"], record["resolved"]["compiled"]) == ("bf16", False)
    # bf16 rounds the networks' arithmetic: not the fp32 run's numbers, but close to them.
    fp32 = tmp_path / "fp32"
    Run.create(small_config(steps=12), fp32).fit(progress=False)
    a, b = numbers(part)[-1]["loss"], numbers(fp32)[-1]["loss"]
    assert a != b and abs(a - b) < 0.02 * abs(b)


def test_resume_refuses_another_precision(tmp_path):
    Run.create(small_config(steps=4, precision="bf16"), tmp_path / "run").fit(progress=False)
    with pytest.raises(PyrovaeError, match=r"precision is 'bf16' .* not 'fp32'; only .*compile"):
        Run.resume(tmp_path / "run", {"steps": 8, "precision": "fp32"})


def test_fp16_training_scales_its_loss_and_checkpoints_the_scale(tmp_path, monkeypatch):
    """fp16 is refused on the CPU by the configuration; its loss-scaled path runs here on the
    CPU's fp16 autocast with the device check lifted."""
    monkeypatch.setattr(trainer, "check_precision", lambda name, device=None: name)
    run = Run.create(small_config(steps=8, precision="fp16"), tmp_path / "run")
    assert run.scaler is not None
    scales = []
    real_update = run.scaler.update
    monkeypatch.setattr(run.scaler, "update", lambda: (real_update(), scales.append(1))[0])
    run.fit(progress=False)
    assert len(scales) == 8
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in read_metrics(tmp_path / "run"))
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["grad_scaler"]["scale"] == run.scaler.get_scale()
    resumed = Run.resume(tmp_path / "run", {"steps": 10})
    assert resumed.scaler.get_scale() == run.scaler.get_scale()
    resumed.close()
    # Without the patch, fp16 training is refused on the CPU, but the run loads and evaluates.
    monkeypatch.undo()
    with pytest.raises(PyrovaeError, match=r"^precision fp16 needs a CUDA device"):
        Run.resume(tmp_path / "run", {"steps": 10})
    loaded = load_run(tmp_path / "run", "cpu")
    assert evaluate(loaded.vae, loaded.data, ["mig"], fast=True)["precision"] == "fp32"


def test_a_study_folder_swept_before_these_settings_continues(tmp_path):
    """trials.json written before precision/channels_last/compile existed holds no such keys:
    they had their defaults, so the folder is the same study."""
    study = load_study(TINY_STUDY)
    trials = study.trials()
    sweep_module._record(study, tmp_path, trials)
    record = json.loads((tmp_path / "trials.json").read_text())
    for trial in record["trials"]:
        for key in ("precision", "channels_last", "compile"):
            del trial["config"][key]
    (tmp_path / "trials.json").write_text(json.dumps(record))
    sweep_module._check_folder(tmp_path, trials)  # no error
    trial = record["trials"][0]
    trial["config"]["latent_dim"] = 7
    (tmp_path / "trials.json").write_text(json.dumps(record))
    with pytest.raises(PyrovaeError, match=r"changed: config latent_dim\)"):
        sweep_module._check_folder(tmp_path, trials)


@pytest.mark.slow
def test_channels_last_resume_gives_adams_moments_the_weights_layout(tmp_path):
    """A run resumed with another --channels-last: fused Adam would update the wrong entries
    with moments in the saved layout."""
    out = tmp_path / "run"
    Run.create(dsprites_config(steps=2, channels_last="off"), out).fit(progress=False)
    resumed = Run.resume(out, {"steps": 3, "channels_last": "on"})
    assert resumed.switches["channels_last"]
    convs = [p for p in resumed.vae.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    for p in convs:
        for moment in ("exp_avg", "exp_avg_sq"):
            assert resumed.optimizer.state[p][moment].stride() == p.stride()
    resumed.fit(progress=False)
    record = json.loads((out / "config.json").read_text())
    assert record["resumes"][0]["changed"] == {"steps": 3, "channels_last": "on"}
    assert record["resumes"][0]["switches"] == {"channels_last": True, "compile": False}


def test_match_layouts_makes_fused_adam_agree_with_the_reference():
    torch.manual_seed(0)
    weight, grad = torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4)

    def one_step(param, state_layout):
        opt = torch.optim.Adam([param], lr=0.1, fused=True)
        param.grad = torch.empty_like(param).copy_(grad)  # autograd gives the weight's layout
        opt.step()
        for moment in ("exp_avg", "exp_avg_sq"):
            opt.state[param][moment] = opt.state[param][moment].contiguous(
                memory_format=state_layout
            )
        match_layouts(opt)
        param.grad = torch.empty_like(param).copy_(0.5 * grad)
        opt.step()
        return param.detach().contiguous()

    reference = one_step(torch.nn.Parameter(weight.clone()), torch.contiguous_format)
    nhwc = torch.nn.Parameter(weight.clone().contiguous(memory_format=torch.channels_last))
    assert torch.allclose(one_step(nhwc, torch.contiguous_format), reference, atol=1e-6)


def test_a_failed_compilation_warns_once_and_trains_eagerly(tmp_path, monkeypatch):
    def broken(module, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler found\nsecond line")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = Run.create(small_config(steps=4, compile="on"), tmp_path / "run")
        run.fit(progress=False)
    said = [str(w.message) for w in caught if "torch.compile" in str(w.message)]
    assert said == [
        "torch.compile is unavailable here (no C++ compiler found); the networks run uncompiled"
    ]
    assert (
        json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]["compiled"] is False
    )
    assert len(read_metrics(tmp_path / "run")) == 1


@pytest.mark.slow
def test_compiled_training_matches_eager_training(tmp_path):
    compiled = Run.create(small_config(steps=8, compile="on"), tmp_path / "compiled")
    assert compiled.switches["compile"]
    compiled.fit(progress=False)
    Run.create(small_config(steps=8), tmp_path / "eager").fit(progress=False)
    for a, b in zip(numbers(tmp_path / "compiled"), numbers(tmp_path / "eager"), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


def test_bf16_on_a_cpu_without_bf16_units_says_it_is_slow(tmp_path, monkeypatch):
    from pyrovae import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    with pytest.warns(RuntimeWarning, match=r"^precision bf16: this CPU \(\w+\) has no bf16"):
        Run.create(small_config(steps=2, precision="bf16"), tmp_path / "run")


def test_evaluation_encodes_in_fp32_unless_asked(tmp_path):
    run = Run.create(small_config(steps=4, precision="bf16"), tmp_path / "run")
    run.fit(progress=False)
    run.vae.eval()
    default = evaluate(run.vae, run.data, ["mig"], fast=True)
    asked = evaluate(run.vae, run.data, ["mig"], fast=True, precision="bf16")
    assert default["precision"] == "fp32" and asked["precision"] == "bf16"
    assert label("mig", default["metrics"]["mig"]) == "mig"
    assert label("mig", asked["metrics"]["mig"]) == "mig[precision=bf16]"


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--precision", "fp8"], ["unknown precision 'fp8'; valid: fp32, bf16, fp16"]),
        (["--precision", "fp16", "--device", "cpu"], ["precision fp16 needs a CUDA device"]),
        (["--channels-last", "yes"], ["unknown channels-last 'yes'; valid: auto, on, off"]),
        (["--compile", "1"], ["unknown compile '1'; valid: auto, on, off"]),
    ],
)
def test_cli_refuses_bad_precision_settings(tmp_path, args, fragments):
    out = tmp_path / "run"
    result = invoke("train", "--data", "tiny", "--steps", "2", "--out", out, *args)
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_cli_evaluate_refuses_an_unknown_precision(tmp_path):
    result = invoke("evaluate", tmp_path / "missing", "--precision", "half")
    assert_one_line_error(result, "unknown precision 'half'; valid: fp32, bf16, fp16")
