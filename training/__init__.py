"""Collaborative encrypted training: parameter server, participants, simulation.

A thin adapter over :mod:`facepp`. The server side (``training.server``,
``training.coordinator``, ``training.store``) holds only the Paillier public key
and never imports secret-key code; ``training.participant`` is key-holder code.
"""
