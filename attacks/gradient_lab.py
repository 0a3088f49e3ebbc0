"""The gradient-inversion experiment: one victim batch, its exact update, four server views.

Views of the same round-1 update of the victim participant:

* ``plaintext/<attack>``: the full update as a plain FedAvg server sees it, under each attack;
* ``top10``: only its largest 10% of coordinates (Shokri and Shmatikov's selective sharing);
* ``dp/<noise>``: the update with client-level DP at each noise multiplier (epsilon from the
  accountant), next to the accuracy of the global model after such a round;
* ``ciphertext``: everything the facepp parameter server holds after a real encrypted
  round, read by :func:`attacks.server_view.updates_without_key`; the best result over every
  candidate vector is reported.

Each is attacked by the optimisation attacks of :mod:`attacks.inversion` (images) and, for a
batch of two, read by :mod:`attacks.feature_read` (the two faces' templates), and scored by
:mod:`attacks.scoring` against the prior-only level measured on the same images.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facepp.model import TrainConfig
from facepp.vision.align import preset_for, to_tensor
from attacks.feature_read import batch_features, best_order, read_features, templates_from_features
from attacks.inversion import METHODS, InversionConfig, invert
from attacks.scoring import Judge, plot_dp, prior_only, save_grid, summarise, template_summary, to_images
from attacks.server_view import encrypted_round, updates_without_key
from attacks.victim import (
    FaceBatch,
    global_weights,
    load_batch,
    local_update,
    plaintext_update,
    public_faces,
    top_fraction,
    victim_spec,
    with_dp,
)
from training.participant.local import build_model, load_flat_weights, local_trainer, save_global_model
from training.participant.privacy import epsilon_after
from training.participant.spec import TrainingSpec, split_for_federation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GradientLabConfig:
    """What to attack and how.

    Attributes:
        data: Dataset folder; the victim's people come from its training identities.
        out: Folder for the image grid and the DP plot.
        model: The federation's starting checkpoint (None: the shipped model).
        from_scratch: Attack a seeded random backbone built from ``train`` instead of ``model``.
        people: Images in the victim's batch (one per person, at least 2).
        local_epochs: Local epochs of the round.
        train: The federation's training recipe (None: ``facepp simulate``'s fine-tuning recipe).
        attack: Iterations, step size and prior weights of every inversion.
        methods: The attacks run on the full plaintext update (the other views use ``geiping``).
        top: Fraction of coordinates shared in the ``top`` view.
        noise_multipliers: DP noise levels of the ``dp`` views.
        clip: DP clip norm.
        key_bits: Paillier key size of the encrypted round.
        workers: Processes encrypting and decrypting in the encrypted round.
        read_batches: With ``people`` 2, more two-image batches whose plaintext updates are read
            for their templates (the report's ``template_read_more``).
        prior_images: Public faces the prior-only guesses draw from.
        seed: Seeds the batch choice, the attack and the DP noise.
    """

    data: Path
    out: Path
    model: Path | None = None
    from_scratch: bool = False
    people: int = 4
    local_epochs: int = 1
    train: TrainConfig | None = None
    attack: InversionConfig = field(default_factory=InversionConfig)
    methods: tuple[str, ...] = METHODS
    top: float = 0.1
    noise_multipliers: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0)
    clip: float = 1.0
    key_bits: int = 2048
    workers: int = 2
    read_batches: int = 10
    prior_images: int = 40
    seed: int = 0
    judge_model: Path | None = None
    cache_dir: Path | None = None


def _read(model: torch.nn.Module, update: np.ndarray, batch: FaceBatch, judge: Judge | None) -> dict[str, Any]:
    """Two images' templates read off ``update``: cosine with their true GDC features and, with a
    ``judge`` of the victim's own model, the attack success of the templates."""
    truth = batch_features(model, to_tensor(batch.crops))
    features, cosine = best_order(read_features(model, update), truth)
    result: dict[str, Any] = {"feature_cosine": cosine}
    if judge is not None:
        result.update(template_summary(templates_from_features(model, features), batch.references, judge))
    return result


class _Attacker:
    """Runs the attacks against views of one update and scores the results.

    Every view gets the optimisation attack (images) and, for a batch of two, the exact
    read of :mod:`attacks.feature_read` (templates), judged by ``template_judge`` when that
    is the victim's own model (the read templates live in its embedding space).
    """

    def __init__(self, model: torch.nn.Module, batch: FaceBatch, judge: Judge, config: GradientLabConfig,
                 template_judge: Judge | None) -> None:
        self.model, self.batch, self.judge, self.config = model, batch, judge, config
        self.template_judge = template_judge
        self.reads = len(batch.crops) == 2
        self.images: dict[str, np.ndarray] = {}

    def run(self, name: str, update: np.ndarray, *, method: str = "geiping", mask: np.ndarray | None = None,
            **extra: Any) -> dict[str, Any]:
        log.info("attacking the %s view", name)
        attack = replace(self.config.attack, method=method)
        images = to_images(invert(self.model, update, batch=len(self.batch.crops), config=attack, mask=mask, progress=True))
        self.images[name] = images
        result = summarise(self.batch.crops, images, self.batch.references, self.judge, **extra)
        if self.reads:
            result["template_read"] = _read(self.model, update, self.batch, self.template_judge)
        return result


def run_gradient_lab(config: GradientLabConfig) -> dict[str, Any]:
    """Run every view; return the report and write ``gradients.png`` and ``dp.png`` into ``config.out``.

    Raises:
        FaceppError: unusable data, checkpoint or parameters.
    """
    from facepp.models import model_or_shipped

    init = None if config.from_scratch else model_or_shipped(config.model)
    spec = victim_spec(model=init, local_epochs=config.local_epochs, train=config.train, seed=config.seed)
    split = split_for_federation(config.data, spec)
    preprocessing = preset_for(split.dataset.layout, input_size=spec.input_size, mode=spec.mode)
    batch = load_batch(config.data, people=config.people, preprocessing=preprocessing, seed=config.seed,
                       exclude=tuple(split.eval_identities), cache_dir=config.cache_dir)
    prior = public_faces(config.data, exclude=batch.people, count=config.prior_images, preprocessing=preprocessing,
                         seed=config.seed, cache_dir=config.cache_dir)
    judge = Judge(config.judge_model)
    weights = global_weights(spec, init)
    model = build_model(spec.train, spec.input_size)
    load_flat_weights(model, weights)
    same_model = init is not None and init == model_or_shipped(config.judge_model)
    attacker = _Attacker(model, batch, judge, config, judge if same_model else None)
    views: dict[str, Any] = {}

    update = plaintext_update(local_update(spec, batch, weights), weights, spec)
    for method in config.methods:
        views[f"plaintext/{method}"] = attacker.run(f"plaintext/{method}", update, method=method)
    shared, mask = top_fraction(update, config.top)
    views[f"top{round(100 * config.top)}"] = attacker.run(f"top{round(100 * config.top)}", shared, mask=mask)

    dp_rows = []
    for noise in config.noise_multipliers:
        private_spec = with_dp(spec, noise_multiplier=noise, clip=config.clip)
        assert private_spec.dp is not None
        private = plaintext_update(local_update(private_spec, batch, weights, noise_seed=config.seed), weights, private_spec)
        epsilon = epsilon_after(1, private_spec.dp)
        accuracy = _round_accuracy(private_spec, split, weights, update, config)
        views[f"dp/{noise:g}"] = attacker.run(f"dp/{noise:g}", private, noise_multiplier=noise, epsilon=epsilon,
                                              model_accuracy=accuracy)
        dp_rows.append({k: views[f"dp/{noise:g}"][k] for k in ("noise_multiplier", "epsilon", "model_accuracy",
                                                                 "attack_success", "ssim", "psnr")})

    with tempfile.TemporaryDirectory(prefix="facepp-attack-") as tmp:
        trainer = local_trainer(spec, batch.crops, batch.labels, 0)
        holdings = encrypted_round(Path(tmp) / "round", spec=spec, weights=weights, trainer=trainer,
                                   key_bits=config.key_bits, workers=config.workers)
    contribution = np.concatenate([weights + update, [1.0]])  # the plaintext a leak would show (weight aside)
    leaks = holdings.leaks({"victim update": contribution})
    candidates = updates_without_key(holdings, weights)
    results = [attacker.run(f"ciphertext/{i}", c) for i, c in enumerate(candidates)]
    best = max(range(len(results)), key=lambda i: (results[i]["attack_success"], results[i]["ssim"]))
    attacker.images["ciphertext"] = attacker.images[f"ciphertext/{best}"]
    views["ciphertext"] = {**results[best], "candidates": len(results), "bytes_held": len(holdings.everything),
                           "plaintext_found_in_server_bytes": leaks}
    if attacker.reads:  # the best template read over the candidates, on its own
        reads = [r["template_read"] for r in results]
        views["ciphertext"]["template_read"] = max(reads, key=lambda r: (r.get("attack_success", 0.0), r["feature_cosine"]))

    prior_level = prior_only(batch.crops, batch.references, prior, judge)
    more = (_read_more(spec, config, preprocessing, split, weights, model, attacker.template_judge)
            if attacker.reads and config.read_batches else None)
    baseline = _round_accuracy(spec, split, weights, update, config)
    grid = save_grid(config.out / "gradients.png", batch.crops,
                     {k: v for k, v in attacker.images.items() if not k.startswith("ciphertext/")})
    plot = plot_dp(config.out / "dp.png", dp_rows, prior_level=prior_level["success"])
    return {
        "views": views,
        "prior_only": prior_level,
        "prior_only_success": prior_level["success"],
        "dp_curve": dp_rows,
        "template_read_more": more,
        "model_accuracy_without_dp": baseline,
        "setup": {"people": batch.people, "images": len(batch.crops), "local_epochs": spec.local_epochs,
                  "backbone": spec.train.backbone, "input_size": spec.input_size, "init": spec.init,
                  "attack": {"iterations": config.attack.iterations, "lr": config.attack.lr,
                             "tv_weight": config.attack.tv_weight}, "clip": config.clip,
                  "threshold": judge.threshold, "prior_images": len(prior)},
        "figures": {"grid": str(grid), "dp_plot": str(plot)},
    }


def _read_more(spec: TrainingSpec, config: GradientLabConfig, preprocessing: Any, split: Any, weights: np.ndarray,
               model: torch.nn.Module, judge: Judge | None) -> dict[str, Any]:
    """The template read on the plaintext updates of ``config.read_batches`` more two-image batches:
    the same numbers over more faces, beside the success of the real photos' own templates."""
    reads, real = [], []
    for k in range(1, config.read_batches + 1):
        other = load_batch(config.data, people=2, preprocessing=preprocessing, seed=config.seed + k,
                           exclude=tuple(split.eval_identities), cache_dir=config.cache_dir)
        reads.append(_read(model, plaintext_update(local_update(spec, other, weights), weights, spec), other, judge))
        if judge is not None:  # the ceiling: the templates of the real training photos
            real.append(template_summary(judge.embed(other.crops), other.references, judge)["attack_success"])
    result = {"batches": len(reads), "images": 2 * len(reads),
              **{key: float(np.mean([r[key] for r in reads])) for key in reads[0]}}
    return {**result, "real_template_success": float(np.mean(real))} if real else result


def _round_accuracy(spec: TrainingSpec, split: Any, weights: np.ndarray, update: np.ndarray,
                    config: GradientLabConfig) -> float:
    """Verification accuracy on the held-out people of the global model after a round in which
    every participant sends the victim's plaintext ``update``: without DP the mean is ``update``;
    with DP it is ``update`` clipped plus the mean of K noise shares (std ``noise * clip / K``)."""
    from facepp.evaluation.verify import evaluate_folder

    mean = update.astype(np.float64)
    if spec.dp is not None:
        norm = float(np.linalg.norm(mean))
        mean *= min(1.0, spec.dp.clip / norm) if norm > 0 else 1.0
        k = len(spec.participants)
        mean += np.random.default_rng(config.seed).normal(0.0, spec.dp.noise_multiplier * spec.dp.clip / k, mean.shape)
    model = build_model(spec.train, spec.input_size)
    load_flat_weights(model, (weights + mean).astype(np.float32))
    with tempfile.TemporaryDirectory(prefix="facepp-attack-eval-") as tmp:
        path = save_global_model(Path(tmp) / "round.pt", model, config=spec.train,
                                 preprocessing=preset_for(split.dataset.layout, input_size=spec.input_size, mode=spec.mode),
                                 extra={})
        kwargs: dict[str, Any] = ({"pairs_file": split.eval_pairs_file} if split.eval_pairs_file
                                  else {"identities": split.eval_identities})
        report = evaluate_folder(path, config.data, cache_dir=config.cache_dir, num_threads=1, **kwargs)
        return float(report.summary()["accuracy"])
