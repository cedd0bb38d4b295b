"""Downstream fine-tuning as the reference notebooks: BackboneFinetuning's actual schedule (against
Lightning 1.7.7's own callback: fixture ``data/backbone_finetuning_pl177.json``), the inputs (against
MONAI LoadImage / Resize and torchvision as the notebooks chain them), class names that travel with the
checkpoint (the prediction's NAME is checked on visually distinct classes), eval refusing a task mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pretrainlab.core.cli import main
from pretrainlab.ct.api import load

PL_FIXTURE = json.loads((Path(__file__).parent / "data" / "backbone_finetuning_pl177.json").read_text())


@pytest.mark.parametrize("run", PL_FIXTURE["runs"], ids=lambda r: f"unfreeze{r['unfreeze']}-epochs{r['epochs']}")
def test_backbone_finetuning_schedule_equals_lightning(run: dict) -> None:
    from pretrainlab.ct.downstream import backbone_finetuning_lrs

    cfg = load("finetune", "full", [f"finetune.epochs={run['epochs']}", f"finetune.unfreeze_epoch={run['unfreeze']}",
                                    f"train.lr={run['lr']}"])
    ours = backbone_finetuning_lrs(cfg.finetune, cfg.train.lr)
    for row, e in zip(run["rows"], ours):
        assert row["groups"] == 1  # the backbone group Lightning tries to add is filtered out
        assert row["lrs"][0] == pytest.approx(e["lr"], rel=1e-12), row["epoch"]
        assert row["conv_requires_grad"] is (not e["frozen"])
        assert row["bn_requires_grad"] is True and row["bn_weight_changed"] and row["head_changed"]
        assert row["conv_changed"] is (not e["frozen"])
    assert ours[-1]["lr"] == pytest.approx(run["lr"] * 0.2)  # 0.1 x lr x lambda 2, aligned, from unfreeze + 1


def _covid_layout(root: Path, n: dict[str, int], size: int = 24, seed: int = 0) -> Path:
    """COVID-CT layout whose classes are visually distinct: CT_COVID bright, CT_NonCOVID dark."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for cls, level in (("CT_COVID", 200), ("CT_NonCOVID", 40)):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for split, count in n.items():
            names = []
            for i in range(count):
                img = np.clip(level + rng.normal(0, 20, (size, size + 5)), 0, 255).astype(np.uint8)
                name = f"{split}_{i}%0.png"
                Image.fromarray(img).save(root / cls / name)
                names.append(name)
            txt = root / "Data-split" / cls.removeprefix("CT_") / f"{split}{cls}.txt"
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text("\n".join(names) + "\n")
    return root


def test_inputs_equal_the_notebook_chain(tmp_path: Path) -> None:
    """COVID / brain: MONAI LoadImage (transposed), 3 channels, ToTensor, Normalize, MONAI Resize (area);
    OrganSMNIST: ToTensor, 3 channels, Normalize(.5, .5), Resize."""
    import torchvision.transforms as T
    from monai.transforms import LoadImage, Resize
    from PIL import Image

    from pretrainlab.ct.downstream import downstream_input, input_spec
    from pretrainlab.ct.formats import read_png_image

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (37, 51), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "x.png")
    cfg = load("finetune", "full", [])
    x = np.asarray(LoadImage(image_only=True)(str(tmp_path / "x.png")))
    x = np.stack((x, x, x), 2).astype(np.uint8)
    ref = T.Compose([T.ToPILImage(), T.ToTensor(), T.Normalize(cfg.finetune.covid_mean, cfg.finetune.covid_std)])(x)
    ref = torch.as_tensor(Resize(spatial_size=(224, 224))(ref))
    ours = downstream_input(read_png_image(tmp_path / "x.png"), input_spec(cfg, "covid"))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    organ = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    ref = T.Compose([T.ToTensor(), lambda t: torch.cat((t, t, t), 0), T.Normalize(mean=[.5], std=[.5])])(
        Image.fromarray(organ))
    ref = torch.as_tensor(Resize(spatial_size=(224, 224))(ref))
    torch.testing.assert_close(downstream_input(organ, input_spec(cfg, "organ")), ref, atol=1e-5, rtol=0)


def test_finetune_trains_as_the_schedule_says(tmp_path: Path, ct_smoke: Path) -> None:
    """Through the core trainer: the conv weights move only from the unfreeze epoch, BatchNorm always, and the
    lr follows the schedule (checkpoint per epoch compared)."""
    from pretrainlab.core.checkpoint import load_tensors

    run = tmp_path / "ft"
    assert main(["ct", "finetune", "--profile", "smoke", "--data", str(ct_smoke), "--out", str(run),
                 "finetune.epochs=3", "finetune.unfreeze_epoch=2", "train.keep_checkpoints=0"]) == 0
    steps = sorted((run / "checkpoints").glob("step_*"))
    assert len(steps) == 3
    w = [load_tensors(s / "model.safetensors")[0] for s in steps]
    conv = "model.backbone.stem.0.weight"
    bn = "model.backbone.stem.1.weight"
    assert torch.equal(w[0][conv], w[1][conv]) and not torch.equal(w[1][conv], w[2][conv])
    assert not torch.equal(w[0][bn], w[1][bn])
    lrs = [json.loads(line)["lr"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"lr"' in line]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-3)  # epoch 2 = unfreeze: still 1e-3
    m = json.loads((run / "metrics.json").read_text())
    assert m["classes"] == ["CT_COVID", "CT_NonCOVID"] and m["init"] == "random" and "auc" in m
    assert (run / "best" / "model.safetensors").exists()


def test_predicted_class_names_follow_the_checkpoint(tmp_path: Path) -> None:
    """Train on a set where CT_COVID is bright and CT_NonCOVID dark: the demo's prediction on a bright slice
    must be NAMED CT_COVID (label 0: the notebook's order, not sorted-folder luck)."""
    from pretrainlab.core.demo import load_app_module
    from pretrainlab.ct import api

    data = _covid_layout(tmp_path / "covid", {"train": 24, "val": 6, "test": 6})
    run = tmp_path / "ft"
    assert main(["ct", "finetune", "--profile", "smoke", "--data", str(data), "--out", str(run), "finetune.epochs=8",
                 "finetune.unfreeze_epoch=0", "train.lr=0.01", "train.batch_size=8"]) == 0
    model, cfg = api.load_classifier(run)
    assert cfg.classes == ("CT_COVID", "CT_NonCOVID")
    app = load_app_module("ct")
    bright = np.full((24, 29), 210, np.uint8)
    dark = np.full((24, 29), 35, np.uint8)
    p_bright, p_dark = app.predict_slice(model, cfg, bright), app.predict_slice(model, cfg, dark)
    assert set(p_bright) == {"CT_COVID", "CT_NonCOVID"}
    assert max(p_bright, key=p_bright.get) == "CT_COVID" and max(p_dark, key=p_dark.get) == "CT_NonCOVID"
    m = json.loads((run / "metrics.json").read_text())
    assert m["accuracy"] == 1.0 and m["auc"] == 1.0


def test_eval_refuses_a_task_mismatch_and_writes_where_it_says(tmp_path: Path, ct_smoke: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "ft"
    assert main(["ct", "finetune", "--profile", "smoke", "--data", str(ct_smoke), "--out", str(run)]) == 0
    before = (run / "metrics.json").read_bytes()
    capsys.readouterr()
    assert main(["ct", "eval", "--ckpt", str(run), "--data", str(ct_smoke), "--task", "organ"]) == 2
    err = capsys.readouterr().err
    assert "error: --task organ: the checkpoint is a covid classifier" in err and "Traceback" not in err
    assert (run / "metrics.json").read_bytes() == before and not list((run / "best").glob("eval-*"))
    assert main(["ct", "eval", "--ckpt", str(run), "--data", str(ct_smoke), "--split", "val"]) == 0
    out = capsys.readouterr().out
    written = run / "best" / "eval-covid-val.json"
    assert str(written) in out and written.exists() and (run / "metrics.json").read_bytes() == before
    e = json.loads(written.read_text())
    assert e["task"] == "covid" and e["split"] == "val" and e["classes"] == ["CT_COVID", "CT_NonCOVID"]


def test_metrics_never_nan() -> None:
    from pretrainlab.ct.downstream import metrics

    m = metrics(torch.tensor([[0.2, 0.8], [0.4, 0.6]]), torch.tensor([1, 1]))
    assert m["auc"] is None and "undefined" in m["auc_note"] and m["accuracy"] == 1.0


def test_linear_probe_is_deterministic_given_the_backbone(ct_smoke: Path) -> None:
    from pretrainlab.ct import api

    a = api.probe(None, ct_smoke, "organ", "smoke", seed=3)
    b = api.probe(None, ct_smoke, "organ", "smoke", seed=3)
    c = api.probe(None, ct_smoke, "organ", "smoke", seed=4)
    assert a == b and 0.0 <= a["auc"] <= 1.0 and a["n_test"] > 0 and a["task"] == "organ"
    assert c["auc"] != a["auc"]  # another random backbone
