"""Privacy attack lab: what each server view reveals about faces, beside the prior-only level.

    python -m benchmarks.privacy_bench [--quick] [--data DIR] [--out DIR] [--json PATH]

Gradient inversion (``facepp attack gradients``) against a participant's exact round-1
update of the shipped model on a small batch of real faces: the full plaintext update
(DLG, iDLG, Geiping et al.), its top 10%, client-level DP at several noise multipliers
(epsilon and the accuracy of the resulting global model beside it), and everything the
facepp parameter server holds after a real encrypted round. For a batch of two (``--quick``)
every view is also read exactly for the two faces' templates (``attacks.feature_read``). Template inversion
(``facepp attack templates``): a decoder trained on public faces with the shipped model
inverts held-out people's templates, as a plain database stores them and as the facepp
matcher holds them. Every view reports SSIM and PSNR (scikit-image) and the attack
success rate (reconstructions the shipped model matches to the person at its FAR 1e-3
threshold); each experiment also measures the prior-only level the ciphertext views must
not beat. ``--quick`` (2 people, short attacks, few decoder epochs) is the short run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from attacks.gradient_lab import GradientLabConfig, run_gradient_lab
from attacks.inversion import InversionConfig
from attacks.template_lab import TemplateLabConfig, run_template_lab
from benchmarks.report import print_table, write_json
from facepp.data import data_root


def _rows(section: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"view": name, "ssim": v["ssim"], "psnr": v["psnr"], "attack_success": v["attack_success"],
             "template_read_success": v.get("template_read", {}).get("attack_success", ""),
             "feature_cosine": v.get("template_read", {}).get("feature_cosine", ""),
             "epsilon": v.get("epsilon", ""), "model_accuracy": v.get("model_accuracy", "")}
            for name, v in section["views"].items()]
    more = section.get("template_read_more")
    if more:
        blank = {"ssim": "", "psnr": "", "attack_success": "", "epsilon": "", "model_accuracy": ""}
        rows.append({"view": f"plaintext, {more['images']} more faces", **blank, "feature_cosine": more["feature_cosine"],
                     "template_read_success": more.get("attack_success", "")})
        rows.append({"view": "their real photos' templates", **blank, "feature_cosine": "",
                     "template_read_success": more.get("real_template_success", "")})
    prior = section["prior_only"]
    rows.append({"view": "prior only", "ssim": prior["ssim"], "psnr": prior["psnr"],
                 "attack_success": section["prior_only_success"], "template_read_success": "", "feature_cosine": "",
                 "epsilon": "", "model_accuracy": ""})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 people, 60-step attacks, 2 noise levels; 6 decoder epochs, 6 held-out people")
    parser.add_argument("--data", type=Path, help="dataset folder (default $FACEPP_DATA/orl)")
    parser.add_argument("--out", type=Path, default=Path("out/privacy"), help="folder for the figures")
    parser.add_argument("--cache-dir", type=Path, help="crop cache folder")
    parser.add_argument("--json", metavar="PATH", help="write the result as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = args.data or data_root("orl")
    quick = args.quick
    gradients = run_gradient_lab(GradientLabConfig(
        data=data, out=args.out, people=2 if quick else 4,
        attack=InversionConfig(iterations=60 if quick else 600),
        noise_multipliers=(0.01, 1.0) if quick else (1e-3, 1e-2, 1e-1, 1.0),
        cache_dir=args.cache_dir))
    templates = run_template_lab(TemplateLabConfig(
        data=data, out=args.out, epochs=6 if quick else 60, people=6 if quick else 10, cache_dir=args.cache_dir))
    print_table("gradient inversion (a participant's round-1 update)", _rows(gradients))
    print_table("template inversion (held-out people)", _rows(templates))
    write_json(args.json, {"quick": quick, "data": str(data), "gradients": gradients, "templates": templates})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
