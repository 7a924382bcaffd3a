"""The upscale command's default sampler follows the table of record (notebook 06)."""

from __future__ import annotations

import importlib
import json

from ctlib.conclusions import cheapest_match

up = importlib.import_module("ctlib.upscale")  # the module (ctlib.upscale is also the function)


def test_defaults_are_the_cheapest_setting_matching_the_best_row():
    pick = cheapest_match(json.loads(up.RECORD_TABLE.read_text(encoding="utf-8")))
    assert (up.DEFAULT_SOLVER, up.DEFAULT_RHO, up.DEFAULT_NFE) == (pick["solver"], pick["rho"], pick["nfe"])
    note = up.default_sampler_note()
    assert f"{pick['psnr_y']:.2f} dB" in note and pick["best_label"] in note


def test_help_states_the_defaults_and_the_numbers_behind_them(capsys):
    from ctlib.cli import main

    try:
        main(["upscale", "--help"])
    except SystemExit as e:
        assert e.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"default {up.DEFAULT_SOLVER}, rho {up.DEFAULT_RHO:g}, nfe {up.DEFAULT_NFE}" in text
    assert "table of record" in text
