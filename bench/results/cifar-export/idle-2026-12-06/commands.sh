#!/usr/bin/env bash
# idle-machine measurements on the tree as issue 17 lands: ../idle-2026-12-05d's
# commands (no runtime code changed since), their outputs written here. From
# the repo root, nothing else of ours running.
RES=bench/results/cifar-export/idle-2026-12-06 OUT=${OUT:-runs/idle-2026-12-06} \
    exec bash bench/results/cifar-export/idle-2026-12-05d/commands.sh
