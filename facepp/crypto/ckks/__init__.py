"""CKKS encrypted matching (terminal and matcher).

Modules and the roles that may import them:

* every role: :mod:`~facepp.crypto.ckks.params`, :mod:`~facepp.crypto.ckks.packing`
  (pure packing maths), :mod:`~facepp.crypto.ckks.wire` (envelopes),
  :mod:`~facepp.crypto.ckks.ops`, :mod:`~facepp.crypto.ckks.messages`,
  :mod:`~facepp.crypto.ckks.public_key` (the public bundle);
* the matcher: :mod:`~facepp.crypto.ckks.gallery` and :mod:`~facepp.crypto.ckks.matcher`
  (public material only);
* the terminal only: :mod:`~facepp.crypto.ckks.secret_key` (:class:`CkksKeyHolder`,
  which holds the secret key).

This package file imports nothing, so importing a public module never loads the
secret-key module.

Typical flow::

    holder = CkksKeyHolder.generate()                       # terminal
    matcher = CkksMatcher.from_public_bundle(holder.export_public_bundle(), dim=128)
    matcher.add("alice", holder.encrypt_template(x_alice))  # enrol
    scores = matcher.score_one("alice", holder.encrypt_probe(x_probe))
    holder.decrypt_scores(scores, dim=128)                  # {"alice": 0.83}
    holder.decrypt_scores(matcher.score_all(holder.encrypt_probe(x, verification=False)), dim=128)

See ``docs/ckks.md`` for parameters, layout, cost and leakage.
"""
