"""`python -m compute mcp` driven by the MCP SDK's own client over stdio: the tools it lists, the
fragile-sample question answered as a direct query answers it, one sample with its image, bounded
answers, one-line errors, the allowed roots, and a store left as it was."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from PIL import Image

from analysis import open_study
from compute import mcp_server, pixels
from store import layout, provenance, reader, writer
from store.catalog import Catalog
from testkit.study import write_study

ROOT = Path(__file__).resolve().parents[2]
MODELS = [("dense", "dense", 0.0, 0), ("ft", "ft", 0.5, 0), ("lrr", "lrr", 0.9, 0)]
TOOLS = {"models", "evaluation_matrix", "filter_rows", "flipped_by_pruning", "preset", "sample", "layers", "report"}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, Path]:
    """A study with fog; the fog/3 images the models saw are a file outside the store (the setting's
    provenance names it), under a folder only --allow-root lets the server read. Returns (store, folder)."""
    root = tmp_path_factory.mktemp("mcp")
    store = write_study(root / "store", models=MODELS, num_samples=40)
    outside = root / "outside"
    outside.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    np.save(outside / "fog-3.npy", images)
    manifest = reader.read_manifest(store)
    manifest[provenance.KEY] = {provenance.key("fog", 3): provenance.from_files(outside / "fog-3.npy", (0, 40), images)}
    writer.write_json(store, manifest, store / layout.MANIFEST)
    return store, outside


def files(store: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(store)): (p.stat().st_size, p.stat().st_mtime_ns) for p in store.rglob("*") if p.is_file()}


def session(store: Path, calls, *flags: str):
    """Start the server on `store`, initialise a client session and return `await calls(session)`."""
    async def run():
        params = StdioServerParameters(command=sys.executable, args=["-m", "compute", "mcp", "--store", str(store),
                                                                     *flags], cwd=str(ROOT))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            return await calls(client)

    return asyncio.run(asyncio.wait_for(run(), timeout=120))


def answer(result) -> dict:
    assert not result.is_error, result.content[0].text
    return json.loads(result.content[0].text)


@pytest.mark.slow  # starts the server as a process
def test_an_agent_finds_what_the_most_pruned_model_loses_under_fog(study) -> None:
    store, _ = study
    before = files(store)

    async def calls(client):
        listed = await client.list_tools()
        cards = answer(await client.call_tool("models", {}))
        rows = [dict(zip(cards["columns"], row, strict=True)) for row in cards["data"]]
        most_pruned = max(rows, key=lambda row: row["target_sparsity"])
        flipped = answer(await client.call_tool("flipped_by_pruning", {"model": most_pruned["model_id"],
                                                                        "corruption": "fog", "severity": 3}))
        layers = answer(await client.call_tool("layers", {"models": [most_pruned["model_id"]]}))
        return listed, most_pruned, flipped, layers

    listed, most_pruned, flipped, layers = session(store, calls)
    assert {tool.name for tool in listed.tools} == TOOLS
    assert all(tool.annotations.read_only_hint and not tool.annotations.destructive_hint for tool in listed.tools)
    assert most_pruned["model_id"] == "lrr" and most_pruned["reference_model_id"] == "dense"
    # the same question asked of the rows directly
    rows = Catalog(store).query("SELECT model_id, sample_id, correct FROM predictions WHERE corruption = 'fog' "
                                "AND severity = 3", name="test.fog")
    wide = rows.pivot("model_id", index="sample_id", values="correct")
    expected = set(wide.filter(pl.col("dense") & ~pl.col("lrr"))["sample_id"].to_list())
    found = {row[flipped["columns"].index("sample_id")] for row in flipped["data"]}
    assert expected and found == expected and flipped["rows"] == len(expected)
    # what pruning left of each layer, as the notebook API gives it
    direct = open_study(store).layers(["lrr"])
    assert layers["rows"] == direct.height > 0
    assert [row[layers["columns"].index("num_nonzero")] for row in layers["data"]] == direct["num_nonzero"].to_list()
    assert files(store) == before  # nothing written


@pytest.mark.slow  # starts the server as a process
def test_sample_values_image_bounds_and_errors(study) -> None:
    store, outside = study

    async def calls(client):
        clean = await client.call_tool("sample", {"sample_id": 7})
        refused = await client.call_tool("sample", {"sample_id": 7, "corruption": "fog", "severity": 3})
        many = answer(await client.call_tool("filter_rows", {"expression": "correct OR NOT correct", "limit": 10_000}))
        bad = await client.call_tool("filter_rows", {"expression": "correct AND; DROP TABLE models"})
        unknown = await client.call_tool("flipped_by_pruning", {"model": "nope", "corruption": "fog", "severity": 3})
        markdown = await client.call_tool("report", {"columns": "summary"})
        return clean, refused, many, bad, unknown, markdown

    clean, refused, many, bad, unknown, markdown = session(store, calls)
    values = answer(clean)
    assert values["rows"] == len(MODELS) * 7 and set(values["columns"]) >= {"model_id", "corruption", "pred", "correct"}
    png = clean.content[1]
    assert png.type == "image" and png.mime_type == "image/png"
    shown = np.array(Image.open(io.BytesIO(base64.b64decode(png.data))))
    assert np.array_equal(shown, pixels.image(store, 7, layout.CLEAN, 0))
    # fog/3 was read from a file outside the store, and this server was not allowed its folder
    assert [c.type for c in refused.content] == ["text", "text"]
    assert "no image" in refused.content[1].text and str(outside) not in refused.content[1].text
    assert many["rows"] == mcp_server.MAX_ROWS and "narrow the filter" in many["cut"]
    for result in (bad, unknown):
        assert result.is_error and "\n" not in result.content[0].text.strip()
    assert "unknown model id" in unknown.content[0].text
    assert markdown.content[0].text.startswith("| row | model | seeds | clean | mean corruption |")


@pytest.mark.slow  # starts the server as a process
def test_the_allowed_roots_let_the_server_read_an_outside_image(study) -> None:
    store, outside = study

    async def calls(client):
        return await client.call_tool("sample", {"sample_id": 7, "corruption": "fog", "severity": 3})

    result = session(store, calls, "--allow-root", str(outside))
    assert [c.type for c in result.content] == ["text", "image"]


def test_the_command_names_a_missing_or_damaged_store_in_one_line(cli, tmp_path) -> None:
    missing = cli("mcp", "--store", tmp_path / "nowhere")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / layout.MANIFEST).write_text("{not json")
    damaged = cli("mcp", "--store", tmp_path / "broken")
    for ran in (missing, damaged):
        assert ran.returncode == 2 and ran.stderr.startswith("error: ") and ran.stderr.count("\n") == 1
    assert "no store directory" in missing.stderr
