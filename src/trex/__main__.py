"""``python -m trex`` is the ``trex`` command (so launchers such as ``torchrun -m trex`` work)."""

from trex.cli import main

main()
