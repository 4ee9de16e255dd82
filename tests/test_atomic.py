import pytest

from handnet.atomic import building_folders, partial_file, write_bytes, write_text
from handnet.config import parse_names


def test_built_folders_replace_their_paths_when_the_block_ends(tmp_path):
    old = tmp_path / "set"
    old.mkdir()
    (old / "stale.jpg").write_bytes(b"old")
    with building_folders(old, tmp_path / "set-unseen") as (known, unseen):
        (known / "a.jpg").write_bytes(b"new")
        (unseen / "b.jpg").write_bytes(b"new")
        assert not (tmp_path / "set-unseen").exists(), "nothing appears under the final name before the end"
    assert sorted(p.name for p in old.iterdir()) == ["a.jpg"]
    assert (tmp_path / "set-unseen" / "b.jpg").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set", "set-unseen"]


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_a_failed_build_leaves_the_old_folder_and_no_partial_one(tmp_path, error):
    old = tmp_path / "set"
    old.mkdir()
    (old / "kept.jpg").write_bytes(b"old")
    with pytest.raises(error), building_folders(old) as (partial,):
        (partial / "half.jpg").write_bytes(b"new")
        raise error("stopped")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    assert (old / "kept.jpg").read_bytes() == b"old"


def test_a_leftover_partial_folder_from_a_killed_run_is_started_afresh(tmp_path):
    (tmp_path / "set.partial").mkdir()
    (tmp_path / "set.partial" / "junk.jpg").write_bytes(b"junk")
    with building_folders(tmp_path / "set") as (partial,):
        assert not any(partial.iterdir())
    assert not any((tmp_path / "set").iterdir())


def test_files_are_written_whole_under_a_suffix_that_keeps_the_format(tmp_path):
    assert partial_file(tmp_path / "model.keras").name == "model.partial.keras"
    path = write_bytes(tmp_path / "sub" / "model.tflite", b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    write_text(path.with_name("config.json"), "{}\n")
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json", "model.tflite"]


def test_comma_separated_names_drop_spaces_and_empty_items():
    assert parse_names(" hello, yes,,ok ,") == ["hello", "yes", "ok"]
    assert parse_names("") == []
