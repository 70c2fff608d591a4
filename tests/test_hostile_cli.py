"""The hostile battery of ``benchmarks/hostile_cli.py`` (73 bad inputs at the command line) in the default suite:
every one is refused in one line or served, none ends in a traceback, none changes a run folder it should not."""
import importlib.util
from pathlib import Path


def test_every_hostile_input_gets_one_clear_line_or_a_right_answer_and_no_folder_changes(capsys):
    path = Path(__file__).parents[1] / "benchmarks" / "hostile_cli.py"
    spec = importlib.util.spec_from_file_location("hostile_cli", path)
    hostile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hostile)
    counts = hostile.run()
    report = capsys.readouterr().out
    assert counts["attempts"] >= 70
    assert counts["traceback"] == 0 and counts["unclear"] == 0 and counts["data lost"] == 0, report
    assert counts["clear"] + counts["served"] == counts["attempts"]
