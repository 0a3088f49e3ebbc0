"""The privacy attack lab: what a plain server learns about faces, and what facepp's servers learn.

A TRUSTED HOST: it plays the victim participant and the terminal (it holds every key and
image) and then the attacker, who is given a chosen view of what a server holds.
``inversion`` (gradient inversion), ``feature_read`` and ``learned`` (the faces of a
two-image step, read and rebuilt from what the update states exactly), ``victim`` (the
participant's batch and its exact update, and the views of it), ``server_view`` (what the
facepp parameter server holds after a real round), ``templates`` (template inversion with a trained decoder),
``matcher_view`` (what the facepp matcher holds), ``scoring`` (PSNR, SSIM, attack success,
figures), ``cli`` (``facepp attack``).

May import the whole library and the training and web applications; nothing imports it
except the benchmarks and the ``facepp.commands`` entry point.
"""
