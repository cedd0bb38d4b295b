"""Lightning 1.7.7's BackboneFinetuning (the notebooks' pin: pytorch-lightning~=1.7.7) on a module shaped
like the notebooks' Net (backbone = nn.Sequential(children of a ResNet minus fc), a linear classifier,
configure_optimizers -> Adam(self.parameters(), lr, weight_decay)): per epoch, the optimizer's groups and
lrs, which backbone parameters require grad, and which changed during the epoch."""
import json
import sys
import warnings

import pytorch_lightning as pl
import torch
from torch import nn

warnings.filterwarnings("ignore")


class Net(pl.LightningModule):
    def __init__(self, lr: float, wd: float) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(4, 2)
        self.lr, self.wd = lr, wd

    def forward(self, x):
        return self.classifier(self.backbone(x).flatten(1))

    def training_step(self, batch, i):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), self.lr, weight_decay=self.wd)  # as the notebooks


class Record(pl.Callback):
    def __init__(self) -> None:
        self.rows = []

    def on_train_epoch_start(self, trainer, m):
        opt = trainer.optimizers[0]
        self.before = {k: v.detach().clone() for k, v in m.state_dict().items()}
        self.rows.append({"epoch": trainer.current_epoch, "groups": len(opt.param_groups),
                          "lrs": [g["lr"] for g in opt.param_groups],
                          "params_per_group": [len(g["params"]) for g in opt.param_groups],
                          "conv_requires_grad": m.backbone[0].weight.requires_grad,
                          "bn_requires_grad": m.backbone[1].weight.requires_grad})

    def on_train_epoch_end(self, trainer, m):
        after = m.state_dict()
        r = self.rows[-1]
        r["conv_changed"] = not torch.equal(self.before["backbone.0.weight"], after["backbone.0.weight"])
        r["bn_weight_changed"] = not torch.equal(self.before["backbone.1.weight"], after["backbone.1.weight"])
        r["bn_stats_changed"] = not torch.equal(self.before["backbone.1.running_mean"], after["backbone.1.running_mean"])
        r["head_changed"] = not torch.equal(self.before["classifier.weight"], after["classifier.weight"])


def run(unfreeze: int, epochs: int, lr: float = 1e-4, wd: float = 5e-4):
    pl.seed_everything(0)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 2, (16,))
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    rec = Record()
    tr = pl.Trainer(max_epochs=epochs, callbacks=[pl.callbacks.BackboneFinetuning(unfreeze_backbone_at_epoch=unfreeze), rec],
                    enable_progress_bar=False, enable_model_summary=False, logger=False, enable_checkpointing=False,
                    accelerator="cpu")
    tr.fit(Net(lr, wd), dl)
    return {"unfreeze": unfreeze, "epochs": epochs, "lr": lr, "rows": rec.rows}


res = {"made_with": {"pytorch_lightning": pl.__version__, "torch": torch.__version__},
       "runs": [run(10, 70), run(2, 6, lr=1e-3)]}
with open(sys.argv[1], "w") as fh:
    json.dump(res, fh, indent=1)
for r in res["runs"]:
    print([(row["epoch"], row["lrs"], row["conv_requires_grad"], row["conv_changed"], row["bn_weight_changed"]) for row in r["rows"][:14]])
