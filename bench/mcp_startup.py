"""`qa mcp` start-up: from launching it to the first answer, beside `qa ask` and `qa serve` in the same run.

    .venv/bin/python bench/mcp_startup.py [--runs 5] [--workdir DIR] [--json] [--transcript docs/mcp-transcript.md]

Corpus: the report in corpus/, indexed once before timing (every launch finds the index up to date).
`qa mcp` is started by the MCP SDK's own client over stdio, as Claude Desktop starts it; the figures are
the time from launch to the end of the handshake, to the tool list, and to the first `ask` answered.
Baselines, on the same index in the same run: `qa ask --json` (launch to exit with its answer) and
`qa serve` (launch to the first POST /ask answered). Each is launched --runs times; medians are shown.
--transcript writes one client run (tools listed, one question asked, the first passage's range read) as
Markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from common import machine, serve
from qa.config import Settings
from qa.service import Assistant

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "corpus" / "article-ii-mandate.txt"
QUESTION = "What is Article II of the 1960 treaty about?"


def prepare(workdir: Path) -> Settings:
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    (corpus / REPORT.name).write_bytes(REPORT.read_bytes())
    settings = Settings(corpus_dir=corpus, index_dir=workdir / "index").resolved()
    print(Assistant(settings).reindex().describe().splitlines()[0], file=sys.stderr)
    return settings


def mcp_params(settings: Settings) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, env=dict(os.environ), args=[
        "-m", "qa.cli", "mcp", "--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir)])


async def mcp_launch(settings: Settings) -> dict:
    began = time.perf_counter()
    async with Client(mcp_params(settings)) as client:
        connected = time.perf_counter() - began
        await client.list_tools()
        listed = time.perf_counter() - began
        result = await client.call_tool("ask", {"question": QUESTION})
        answered = time.perf_counter() - began
    assert not result.is_error, result.content
    return {"handshake_s": connected, "tools_listed_s": listed, "first_answer_s": answered}


def cli_launch(settings: Settings) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "qa.cli", "ask", QUESTION, "--json", "--corpus", str(settings.corpus_dir),
                    "--index", str(settings.index_dir)], check=True, capture_output=True)
    return time.perf_counter() - began


def serve_launch(settings: Settings) -> float:
    with serve(settings, settings.backend) as (_, startup_s):
        return startup_s


def run(workdir: Path, runs: int) -> dict:
    settings = prepare(workdir)
    out: dict = {"machine": machine(), "runs": runs, "mcp": [], "qa_ask": [], "qa_serve": []}
    for _ in range(runs):  # interleaved, so a change in the machine's load touches all three alike
        out["mcp"].append(asyncio.run(mcp_launch(settings)))
        out["qa_ask"].append(cli_launch(settings))
        out["qa_serve"].append(serve_launch(settings))
    out["median_s"] = {
        **{key: round(statistics.median(r[key] for r in out["mcp"]), 2) for key in out["mcp"][0]},
        "qa_ask_s": round(statistics.median(out["qa_ask"]), 2),
        "qa_serve_first_answer_s": round(statistics.median(out["qa_serve"]), 2),
    }
    out["machine_at_end"] = machine()
    return out


def render(out: dict) -> str:
    m = out["median_s"]
    return "\n".join([
        out["machine"], f"medians of {out['runs']} launches each, on the report's index (up to date)", "",
        "| launched | to handshake | to tool list | to first answer |", "| --- | --- | --- | --- |",
        f"| qa mcp (SDK client, stdio) | {m['handshake_s']:.2f} s | {m['tools_listed_s']:.2f} s "
        f"| {m['first_answer_s']:.2f} s |",
        f"| qa ask --json (baseline: to exit) | | | {m['qa_ask_s']:.2f} s |",
        f"| qa serve (baseline: first POST /ask) | | | {m['qa_serve_first_answer_s']:.2f} s |",
        "", f"at the end: {out['machine_at_end']}",
    ])


async def transcript(settings: Settings) -> str:
    """One client session, as Markdown: what a client sends and what it gets back."""
    def block(value) -> str:
        return "```json\n" + json.dumps(value, indent=2, ensure_ascii=False) + "\n```"

    lines = ["# An MCP client run, recorded", "",
             "Recorded by `bench/mcp_startup.py --transcript` with the MCP Python SDK's own client (`mcp` "
             "2.3.0), which starts `qa mcp --corpus ... --index ...` over stdio on the report's corpus.", ""]
    async with Client(mcp_params(settings)) as client:
        tools = (await client.list_tools()).tools
        lines += ["## 1. tools/list", "", *(f"- `{t.name}`: {t.description.splitlines()[0]}" for t in tools), "",
                  "Input schema of `ask`:", "", block(next(t for t in tools if t.name == "ask").input_schema), ""]
        asked = await client.call_tool("ask", {"question": QUESTION, "k": 3})
        lines += [f"## 2. tools/call `ask` {{\"question\": \"{QUESTION}\", \"k\": 3}}", "",
                  "Text content (what a model reads):", "", "```text", asked.content[0].text, "```", "",
                  "Structured content (the `/ask` body):", "", block(asked.structured_content), ""]
        first = asked.structured_content["passages"][0]
        arguments = {"doc_id": first["doc_id"], "start": first["start"], "end": first["end"]}
        read = await client.call_tool("read_document", arguments)
        lines += ["## 3. tools/call `read_document` on the first passage's range", "", block(arguments), "",
                  "Structured content:", "", block(read.structured_content), "",
                  f"The range's text equals passage 1's text: {read.structured_content['text'] == first['text']}.", ""]
        refused = await client.call_tool("ask", {"question": QUESTION, "k": 21})
        lines += ["## 4. A bad argument: tools/call `ask` with k = 21", "",
                  f"`is_error`: {refused.is_error}; text: `{refused.content[0].text}` (the API's 422 detail).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="launches of each command")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the corpus and index here (reused)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--transcript", type=Path, default=None, help="also write one client run here (Markdown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qa-bench-mcp-") as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        out = run(workdir, args.runs)
        if args.transcript:
            args.transcript.write_text(asyncio.run(transcript(Settings(corpus_dir=workdir / "corpus",
                                                                       index_dir=workdir / "index"))) + "\n")
    print(json.dumps(out, indent=2) if args.json else render(out))


if __name__ == "__main__":
    main()
