"""Lightning's DDP strategy on two CPU processes (gloo): both ranks end with the same weights, those of one process
with twice the batch, for an unconditional model and for a class-conditional one (labels split with the data)."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import dgm
from dgm.data.base import Data
from dgm.training import fit, seed_everything

SCRIPT = textwrap.dedent('''
    import sys
    from safetensors.torch import save_file
    from dgm.training import fit
    sys.path.insert(0, sys.argv[1])
    from test_ddp import build

    out, case = sys.argv[2], sys.argv[3]
    data, model = build(case)
    run = fit(model, data, out + "/run", max_epochs=2, batch_size=32, devices=2, strategy="ddp",
              accelerator="cpu", progress=False)
    save_file({k: v.contiguous() for k, v in run.model.state_dict().items()}, f"{out}/rank{run.rank}.safetensors")
''')


def build(case: str) -> tuple[Data, dgm.GenerativeModel]:
    """The data and the freshly seeded model of a case: ``"vectors"`` (a RealNVP on shifted Gaussian noise) or
    ``"labels"`` (a class-conditional Gated PixelCNN on 2x2 binary images whose class sets their mean)."""
    generator = torch.Generator().manual_seed(0)
    if case == "vectors":
        data = Data("ddp", torch.randn(512, 2, generator=generator) + 3, torch.randn(128, 2, generator=generator) + 3)
        seed_everything(0)
        return data, dgm.create("realnvp", data=data, n_layers=2, hidden=[16])
    labels = torch.arange(640) % 2
    images = (torch.rand(640, 1, 2, 2, generator=generator) < 0.2 + 0.6 * labels.view(-1, 1, 1, 1)).float()
    data = Data("ddp-labels", images[:512], images[512:], levels=2, train_labels=labels[:512],
                test_labels=labels[512:])
    seed_everything(0)
    return data, dgm.create("gated-pixelcnn", data=data, filters=4, layers=2, kernel_size=3, n_classes=2)


@pytest.mark.parametrize("case", ["vectors", "labels"])
def test_two_ddp_processes_end_with_identical_weights_equal_to_one_process_with_twice_the_batch(tmp_path, case):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(Path(__file__).parent), str(tmp_path), case],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # each process takes half of every batch (with its labels) and DDP averages the gradients: one process with
    # batches of 64 over the same data takes the same steps (up to rounding)
    data, single = build(case)
    initial = {key: value.clone() for key, value in single.state_dict().items()}
    fit(single, data, tmp_path / "single", max_epochs=2, batch_size=64, accelerator="cpu", progress=False)
    for key, value in single.state_dict().items():
        torch.testing.assert_close(rank0[key], value, atol=1e-5, rtol=1e-4)
    assert any(not torch.equal(initial[key], rank0[key]) for key in rank0)  # and training did move them
