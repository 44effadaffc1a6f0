"""Bad flags, unreadable inputs and Ctrl-C end every command in one line on stderr, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fr_data.io.faults import HOLD_ENV
from hardmine.cli.main import main
from tests.fr_data.embed.helpers import make_shards
from tests.repo import ROOT

TINY = "tests.fr_data.embed.helpers:make_tiny"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Existing files and folders the commands accept, and a few that they must refuse."""
    root = tmp_path_factory.mktemp("inputs")
    shards = root / "shards"
    make_shards(shards, n=10, n_shards=3)
    (root / "run").mkdir()
    (root / "text.txt").write_text("not a parquet file\n")
    (root / "notorch.pth").write_bytes(b"hello")
    (root / "empty.sql").write_text("  \n")
    (root / "cfg.yaml").write_text("{}\n")
    return {"shards": shards, "run": root / "run", "text": root / "text.txt", "notorch": root / "notorch.pth",
            "empty_sql": root / "empty.sql", "cfg": root / "cfg.yaml", "root": root}


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """``hardmine ARGV`` in this process: (exit code, stderr)."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


EMBED = ["embed", "--shards", "{shards}", "--model", TINY, "--out", "{root}/EMB", "--device", "cpu", "--no-progress"]
SHARD = ["shard", "--src", "{shards}", "--out", "{root}/out"]
SYNTH = ["synth", "--out", "{root}/synth", "--identities", "2", "--images-per-identity", "2"]
MINE = ["mine", "--embeddings", "{run}", "--out", "{root}/mined"]
REPORT = ["report", "{run}", "--shards", "{shards}", "--out", "{root}/rep"]
DEMO = ["demo", "--out", "{root}/demo"]
EXPERIMENT = ["experiment", "--out", "{root}/exp"]

#: (argv, what the error line must name): each argv is valid but for one flag ({name}: a path of ``inputs``).
BAD_FLAGS = [
    (EMBED + ["--batch-size", "0"], "--batch-size"),
    (EMBED + ["--batch-size", "-2"], "--batch-size"),
    (EMBED + ["--workers", "-1"], "--workers"),
    (EMBED + ["--embedding-size", "0"], "--embedding-size"),
    (EMBED + ["--shards", "{text}"], "--shards"),
    (EMBED + ["--checkpoint", "{root}/missing.pth"], "--checkpoint"),
    (EMBED + ["--out", "{text}"], "--out"),
    (SHARD + ["--workers", "0"], "--workers"),
    (SHARD + ["--workers", "-1"], "--workers"),
    (SHARD + ["--per-shard", "0"], "--per-shard"),
    (SHARD + ["--shard-bytes", "-5"], "--shard-bytes"),
    (SHARD + ["--seed", "-1"], "--seed"),
    (SHARD + ["--limit", "0"], "--limit"),
    (SHARD + ["--world-size", "0"], "--world-size"),
    (SHARD + ["--loader-workers", "0"], "--loader-workers"),
    (SHARD + ["--decode-check", "1.5"], "--decode-check"),
    (SHARD + ["--decode-check", "nan"], "--decode-check"),
    (SHARD + ["--out", "{text}"], "--out"),
    (SHARD + ["--src", "{root}/missing"], "--src"),
    (SYNTH + ["--identities", "0"], "--identities"),
    (SYNTH + ["--images-per-identity", "-1"], "--images-per-identity"),
    (SYNTH + ["--seed", "-3"], "--seed"),
    (SYNTH + ["--mislabel-rate", "1.5"], "--mislabel-rate"),
    (SYNTH + ["--duplicate-rate", "-0.1"], "--duplicate-rate"),
    (SYNTH + ["--cross-duplicate-share", "2"], "--cross-duplicate-share"),
    (SYNTH + ["--split-identity-rate", "x"], "--split-identity-rate"),
    (SYNTH + ["--holdout-identities", "-1"], "--holdout-identities"),
    (SYNTH + ["--pairs", "-1"], "--pairs"),
    (SYNTH + ["--workers", "0"], "--workers"),
    (SYNTH + ["--out", "{text}"], "--out"),
    (MINE + ["--attributes", "{text}"], "--attributes"),
    (MINE + ["--samples", "{text}"], "--samples"),
    (MINE + ["--config", "{root}/missing.yaml"], "--config"),
    (MINE + ["--embeddings", "{root}/missing"], "--embeddings"),
    (MINE + ["--out", "{text}"], "--out"),
    (["query", "{run}", "SELECT 1", "--max-rows", "-1"], "--max-rows"),
    (["query", "{run}", ""], "sql"),
    (["query", "{run}", "  \n "], "sql"),
    (["query", "{run}", "SELECT 1", "--attributes", "{text}"], "--attributes"),
    (["query", "{run}"], "--file"),
    (["query", "{run}", "--file", "{empty_sql}"], "empty.sql"),
    (REPORT + ["--per-section", "0"], "--per-section"),
    (REPORT + ["--out", "{text}"], "--out"),
    (REPORT + ["--attributes", "{text}"], "--attributes"),
    (DEMO + ["--steps", "0"], "--steps"),
    (DEMO + ["--workers", "-1"], "--workers"),
    (DEMO + ["--seed", "-1"], "--seed"),
    (DEMO + ["--out", "{text}"], "--out"),
    (EXPERIMENT + ["--workers", "0"], "--workers"),
    (EXPERIMENT + ["--data-seed", "0"], "--data-seed"),
    (EXPERIMENT + ["--seeds", "1", "-1"], "--seeds"),
    (["experiment-pool", "--out", "{root}/pool", "{text}"], "experiments"),
    (["train", "--config", "{cfg}", "--stop-after", "0"], "--stop-after"),
    (["verify", "{text}"], "text.txt"),
]


@pytest.mark.parametrize("argv, named", BAD_FLAGS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_FLAGS])
def test_a_bad_flag_is_a_one_line_error_naming_it(argv, named, inputs, capsys):
    argv = [arg.format(**inputs) for arg in argv]
    code, err = run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2, (argv, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"hardmine {argv[0]}: error: ") and named in lines[0], err


@pytest.mark.parametrize("extra, named", [
    (["--model", "tiny", "--checkpoint", "notorch"], "cannot load as a weights-only checkpoint: KeyError"),
    (["--model", "os:system"], "'os:system': calling the factory failed: TypeError"),
    (["--model", "builtins:dict"], "'builtins:dict' built a dict, not a torch.nn.Module"),
])
def test_a_model_that_cannot_be_built_is_a_one_line_error(extra, named, inputs, capsys):
    extra = [str(inputs[x]) if x in inputs else x for x in extra]
    argv = ["embed", "--shards", str(inputs["shards"]), "--out", str(inputs["root"] / "EMB"), "--device", "cpu",
            "--no-progress", *extra]
    code, err = run_cli(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and named in err, err
    assert err.startswith("hardmine embed: error: ") and not (inputs["root"] / "EMB").exists()


def test_tools_wrapper_names_the_command(inputs):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "embed.py"), "--shards", str(inputs["text"]),
                           "--model", TINY, "--out", "x"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2 and done.stderr.startswith("hardmine embed: error: argument --shards")


#: command -> (argv after the subcommand, a point where ``fr_data.io.faults`` holds it)
def interrupt_cases(tmp: Path, shards: Path, emb: Path, synth: Path) -> dict[str, tuple[list[str], str]]:
    return {
        "synth": (["--out", str(tmp / "s"), "--identities", "2", "--images-per-identity", "2", "--pairs", "0"],
                  "atomic:replace"),
        "shard": (["--src", str(synth), "--out", str(tmp / "sh")], "atomic:replace"),
        "embed": (["--shards", str(shards), "--model", TINY, "--out", str(tmp / "e"), "--device", "cpu",
                   "--workers", "0", "--no-progress"], "embed:batch"),
        "mine": (["--embeddings", str(emb), "--out", str(tmp / "m"), "--quiet"], "mine:centres"),
    }


@pytest.fixture(scope="module")
def interrupt_inputs(inputs) -> tuple[Path, Path]:
    """An embeddings folder of the test shards and a tiny synthetic RecordIO set."""
    emb, synth = inputs["root"] / "emb", inputs["root"] / "synth_ok"
    assert main(["embed", "--shards", str(inputs["shards"]), "--model", TINY, "--out", str(emb), "--device", "cpu",
                 "--workers", "0", "--no-progress"]) == 0
    assert main(["synth", "--out", str(synth), "--identities", "2", "--images-per-identity", "2",
                 "--pairs", "0"]) == 0
    return emb, synth


# The child installs Python's own SIGINT handler explicitly: a test run started in the background
# inherits an ignored SIGINT, which Python would keep.
CHILD = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
         "from hardmine.cli.main import main; raise SystemExit(main(sys.argv[1:]))")


@pytest.mark.parametrize("name", ["synth", "shard", "embed", "mine"])
def test_ctrl_c_exits_130_with_one_line(name, inputs, interrupt_inputs, tmp_path):
    argv, point = interrupt_cases(tmp_path, inputs["shards"], *interrupt_inputs)[name]
    env = {**os.environ, HOLD_ENV: point, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, name, *argv], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        before = []
        for line in child.stderr:  # blocks until the child reaches the point
            before.append(line)
            if line.startswith(f"held at {point}"):
                break
        assert before and before[-1].startswith("held at"), "".join(before)
        child.send_signal(subprocess.signal.SIGINT)
        rest = child.stderr.read()
        code = child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert code == 130 and rest == f"hardmine {name}: interrupted\n", rest
