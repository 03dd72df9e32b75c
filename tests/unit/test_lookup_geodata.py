"""Caller regions from the compact copy of phonenumbers' geocoding data (controller/lookup.py): the same
answers as phonenumbers' own dict, at a fraction of the memory."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.lookup import PrefixTable, caller_region

REPO = Path(__file__).resolve().parents[2]


def test_a_prefix_table_answers_as_the_dict_it_was_made_of() -> None:
    data = {"8613912": {"zh": "江苏省常州市", "en": "Changzhou, Jiangsu"}, "8620": {"zh": "广东省广州市"},
            "1415": {"en": "San Francisco, CA"}, "8613913": {"zh": "江苏省常州市", "en": "Changzhou, Jiangsu"}}
    table = PrefixTable.of(data)
    assert dict(table) == data and len(table) == 4
    assert "8620" in table and table["1415"] == {"en": "San Francisco, CA"}
    assert table["8613912"] is table["8613913"]  # one copy of each distinct place
    for missing in ("862", "08620", "86x", "", "999999999"):
        assert missing not in table
        with pytest.raises(KeyError):
            table[missing]


def test_the_controller_reads_the_compact_table_built_once_from_phonenumbers_own_data(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    script = ("import sys, controller.lookup as l; print(type(sys.modules['phonenumbers.geodata'].GEOCODE_DATA)"
              ".__name__, l.caller_region('13912345678').description, l.caller_region('02088881234').city)")
    first = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                           timeout=180, check=True)
    assert first.stdout.split() == ["PrefixTable", "江苏省常州市", "广州市"], first.stderr
    saved = list((tmp_path / "ccc").glob("geodata-*.json"))
    assert len(saved) == 1
    again = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                           timeout=60, check=True)  # read from the file built the first time
    assert again.stdout == first.stdout and list((tmp_path / "ccc").iterdir()) == saved

    from phonenumbers import geodata  # the whole data (this test process may hold it)

    table = json.loads(saved[0].read_text(encoding="utf-8"))
    compact = PrefixTable(table["prefixes"], table["places"], table["names"])
    assert table["longest"] == geodata.GEOCODE_LONGEST_PREFIX
    assert len(compact) == len(geodata.GEOCODE_DATA)
    assert all(compact[prefix] == place for prefix, place in geodata.GEOCODE_DATA.items())


def test_without_a_usable_cache_the_whole_data_is_used_and_regions_still_answer(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    env = {**os.environ, "XDG_CACHE_HOME": str(blocked)}
    script = ("import sys, controller.lookup as l; print(type(sys.modules['phonenumbers.geodata'].GEOCODE_DATA)"
              ".__name__, l.caller_region('13912345678').description)")
    run = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=180, check=True)
    assert run.stdout.split() == ["dict", "江苏省常州市"]
    assert "whole geocoding data is used" in run.stderr


def test_a_regions_dict_has_every_field_as_dataclasses_asdict_gives_it() -> None:
    """CallerRegion.as_dict is written out (it runs twice per call): a field added to the class must be in it."""
    region = caller_region("13912345678")
    assert region.description  # a real answer, not UNKNOWN
    assert region.as_dict() == dataclasses.asdict(region)
    assert list(region.as_dict()) == [field.name for field in dataclasses.fields(region)]
