"""Write tests/data/vae_regression.json: short VAE runs (embedded Fashion-MNIST subset) whose per-epoch
numbers, MCU cycles and SRAM plan `tests/test_vae_regression.py` pins. Rerun only when training
arithmetic changes on purpose, and say why in the same commit."""
import json
import sys
import tempfile
from pathlib import Path

from mcusim.train import TrainConfig, Trainer

RUNS = {
    "fp32": dict(precision="fp32", epochs=2),
    "u8": dict(precision="u8", epochs=2),
    "u8_sparse": dict(precision="u8", epochs=1, sparse=[0.5, 1.0]),
}
COMMON = dict(dataset="fashion-mnist", train_limit=600, labels_per_class=[10], head_epochs=2, crosscheck_samples=2)


def pinned(results: dict) -> dict:
    mcu = results["mcu"]
    return {"epochs": [{k: e[k] for k in ("train_neg_elbo", "test_neg_elbo", "test_accuracy", "update_rate")}
                       for e in results["epochs"]],
            "mcu": {k: mcu[k] for k in ("cycles_per_training_sample", "cycles_per_inference", "fits", "crosscheck")},
            "sram_bytes": {k: mcu["sram_bytes"][k] for k in ("activations", "weights", "planned_total")}}


def main() -> None:
    out = {}
    for name, kw in RUNS.items():
        with tempfile.TemporaryDirectory() as d:
            res = Trainer(TrainConfig(**COMMON, **kw), Path(d) / name, progress=False, log=lambda m: None).run()
        out[name] = {"config": {**COMMON, **kw}, **pinned(res)}
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent.parent / "tests/data/vae_regression.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
