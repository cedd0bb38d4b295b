"""The reference SwAV module itself (Less_is_More Pre-Training/Contrastive_Learning/.../swav_module_lidc.py,
its bundled pl_bolts LARS and linear_warmup_decay) trained with pytorch-lightning 1.6.5 (its pin,
pytorch-lightning~=1.6.0) on a tiny ImageFolder, on the CPU (fp32; the reference used fp16 on a GPU):
the lr of every optimizer step and whether the prototypes moved, with the README's settings
(lr 0.15, warmup_epochs 10, freeze_prototypes_epochs 313) and resnet18 / small crops for speed."""
import json
import sys
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np
import torch

# environment shim (torch 2.9 here, torch 1.13 in the reference's env): Lightning 1.6 checks schedulers with
# isinstance(_, torch.optim.lr_scheduler._LRScheduler), which LambdaLR no longer is in torch 2.
torch.optim.lr_scheduler._LRScheduler = torch.optim.lr_scheduler.LRScheduler
import pytorch_lightning as pl
from PIL import Image

warnings.filterwarnings("ignore")
CL = Path("/work/scratch/ct/Less_is_More/Pre-Training/Contrastive_Learning/pl_bolts")
for name, path in (("pl_bolts", CL), ("pl_bolts.optimizers", CL / "optimizers")):  # skip pl_bolts/__init__ (imports all)
    m = types.ModuleType(name); m.__path__ = [str(path)]; sys.modules[name] = m
SWAV = CL / "models/self_supervised/swav"
sys.path.insert(0, str(SWAV))
# The published swav_module_lidc.py does not parse: its add_model_specific_args has a duplicated
# `def add_model_specific_args(parent_parser):` line (IndentationError). The one change made to run it:
# that duplicate line (and the comment between) removed. Nothing else is touched.
src = (SWAV / "swav_module_lidc.py").read_text()
dup = "    def add_model_specific_args(parent_parser):\n        # Parser argumente\n    def add_model_specific_args(parent_parser):\n"
assert src.count(dup) == 1
src = src.replace(dup, "    def add_model_specific_args(parent_parser):\n")
swav_module_lidc = types.ModuleType("swav_module_lidc")
swav_module_lidc.__file__ = str(SWAV / "swav_module_lidc.py")
exec(compile(src, str(SWAV / "swav_module_lidc.py"), "exec"), swav_module_lidc.__dict__)  # noqa: S102 - the reference


class Record(pl.Callback):
    def __init__(self):
        self.lrs, self.proto_moved = [], []

    def on_train_batch_start(self, trainer, m, batch, i):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_epoch_start(self, trainer, m):
        self.p0 = m.model.prototypes.weight.detach().clone()

    def on_train_epoch_end(self, trainer, m):
        p1 = torch.nn.functional.normalize(m.model.prototypes.weight.detach(), dim=1)
        self.proto_moved.append(not torch.allclose(torch.nn.functional.normalize(self.p0, dim=1), p1, atol=1e-6))


def run(freeze_epochs: int, max_epochs: int = 25, n_images: int = 24, bs: int = 4):
    pl.seed_everything(0)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "train").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n_images):
        Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(tmp / "train" / f"x_{i}.png")
    model = swav_module_lidc.SwAV(gpus=0, dataset="lidc", arch="resnet18", hidden_mlp=32, feat_dim=16,
                                  nmb_prototypes=10, freeze_prototypes_epochs=freeze_epochs, warmup_epochs=10,
                                  max_epochs=max_epochs, optimizer="lars", learning_rate=0.15, start_lr=0.3,
                                  final_lr=0.00015, weight_decay=1e-6, nmb_crops=[2, 2], crops_for_assign=[0, 1],
                                  load_pretrained_weights=False, data_dir=str(tmp), size_crops=[32, 16],
                                  min_scale_crops=[0.9, 0.1], max_scale_crops=[1.0, 0.33], batch_size=bs, num_workers=0)
    rec = Record()
    tr = pl.Trainer(gpus=0, max_epochs=max_epochs, precision=32, callbacks=[rec], logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False)
    tr.fit(model)
    return {"freeze_prototypes_epochs": freeze_epochs, "max_epochs": max_epochs, "images": n_images, "batch_size": bs,
            "iters_per_epoch": n_images // bs, "train_iters_per_epoch_after_fit": model.train_iters_per_epoch,
            "lr_per_step": rec.lrs, "prototypes_moved_per_epoch": rec.proto_moved}


res = {"made_with": {"pytorch_lightning": pl.__version__, "torch": torch.__version__,
                     "module": "Less_is_More Pre-Training/Contrastive_Learning/pl_bolts/models/self_supervised/swav/swav_module_lidc.py "
                               "(its duplicated def line removed so that it parses)"},
       "runs": [run(313), run(1, max_epochs=4)]}
with open(sys.argv[1], "w") as fh:
    json.dump(res, fh, indent=1)
r = res["runs"][0]
print(len(r["lr_per_step"]), [round(x, 4) for x in r["lr_per_step"][:14]], r["prototypes_moved_per_epoch"][:5])
print(res["runs"][1]["prototypes_moved_per_epoch"])
