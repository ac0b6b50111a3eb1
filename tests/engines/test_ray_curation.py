"""`data dedup --engine ray` against the local command: the same decisions, report byte for byte."""

from __future__ import annotations

import json

from tests.curation.scenes import save, scene, with_clock


def test_cli_dedup_engine_ray_writes_the_local_report(ray_session, tmp_path, capsys):
    from sitesight.cli.main import main

    for cam, seed in (("cam1", 1), ("cam2", 5), ("cam3", 9)):  # frozen bursts with a ticking clock, then a change
        for s in range(4):
            save(with_clock(scene(seed), f"08:00:{s:02d}"), tmp_path / "cap" / f"{cam}_20240101T0800{s:02d}.jpg")
        save(scene(seed + 1), tmp_path / "cap" / f"{cam}_20240101T080100.jpg")
    (tmp_path / "cap" / "cam2_20240101T080200.jpg").write_bytes(b"broken")
    common = ["data", "dedup", str(tmp_path / "cap"), "--ignore-region", "0,0,200,40"]
    assert main([*common, "--report", str(tmp_path / "local.csv")]) == 0
    local_summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main([*common, "--report", str(tmp_path / "ray.csv"), "--engine", "ray"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == local_summary
    assert local_summary == {"frames": 16, "kept": 6, "dropped": 9, "skipped": 1, "cameras": 3}
    assert (tmp_path / "local.csv").read_text() == (tmp_path / "ray.csv").read_text()
