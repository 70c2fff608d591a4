"""Lightning's DDP strategy on two CPU processes (gloo): both ranks end with the same weights."""
import subprocess
import sys
import textwrap

import torch
from safetensors.torch import load_file

import dgm
from dgm.data.base import Data
from dgm.training import fit, seed_everything

SCRIPT = textwrap.dedent('''
    import sys
    import torch
    from safetensors.torch import save_file
    import dgm
    from dgm.data.base import Data
    from dgm.training import fit, seed_everything

    out = sys.argv[1]
    generator = torch.Generator().manual_seed(0)
    data = Data("ddp", torch.randn(512, 2, generator=generator) + 3, torch.randn(128, 2, generator=generator) + 3)
    seed_everything(0)
    model = dgm.create("realnvp", data=data, n_layers=2, hidden=[16])
    run = fit(model, data, out + "/run", max_epochs=2, batch_size=32, devices=2, strategy="ddp",
              accelerator="cpu", progress=False)
    save_file({k: v.contiguous() for k, v in run.model.state_dict().items()}, f"{out}/rank{run.rank}.safetensors")
''')


def test_two_ddp_processes_end_with_identical_weights_equal_to_one_process_with_twice_the_batch(tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # each process takes half of every batch and DDP averages the gradients: one process with batches of 64 over
    # the same data takes the same steps (up to rounding)
    generator = torch.Generator().manual_seed(0)
    data = Data("ddp", torch.randn(512, 2, generator=generator) + 3, torch.randn(128, 2, generator=generator) + 3)
    seed_everything(0)
    single = dgm.create("realnvp", data=data, n_layers=2, hidden=[16])
    initial = {key: value.clone() for key, value in single.state_dict().items()}
    fit(single, data, tmp_path / "single", max_epochs=2, batch_size=64, accelerator="cpu", progress=False)
    for key, value in single.state_dict().items():
        torch.testing.assert_close(rank0[key], value, atol=1e-5, rtol=1e-4)
    assert any(not torch.equal(initial[key], rank0[key]) for key in rank0)  # and training did move them
