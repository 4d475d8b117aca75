"""The `qa` command: a thin shell over `Assistant`; domain errors become click errors here."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from pathlib import Path

import click

from qa.config import Settings, replica_bounds
from qa.errors import CorpusMissing, QAError

EXIT_SKIPPED = 3  # `qa index` finished, but some files could not be read


def common_options(command):
    @click.option("--corpus", "corpus", type=click.Path(path_type=Path), default=None,
                  help="Corpus folder [env QA_CORPUS_DIR, else ./corpus].")
    @click.option("--index", "index", type=click.Path(path_type=Path), default=None,
                  help="Index folder [env QA_INDEX_DIR, else ./index].")
    @functools.wraps(command)
    def wrapper(corpus, index, **kwargs):
        overrides = {k: v for k, v in (("corpus_dir", corpus), ("index_dir", index)) if v is not None}
        settings = Settings(**overrides).resolved()
        try:
            return command(settings, **kwargs)
        except QAError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


@click.group()
@click.version_option(package_name="alliance-qa")
def main() -> None:
    """Ask questions about the documents in a corpus folder; answers cite their passages."""


@main.command("index")
@common_options
@click.option("--rebuild", is_flag=True, help="Re-embed every document instead of only what changed.")
@click.option("--wait", is_flag=True, help="Wait for another running build instead of exiting.")
@click.option("--ray", "ray_address", metavar="ADDRESS", default=None,
              help="Encode on a Ray cluster: host:port, ray://host:10001, `auto` (the cluster this machine "
              "joined) or `local` (one started here) [env QA_RAY_ADDRESS]. Needs: pip install 'alliance-qa[ray]'.")
@click.option("--shards", type=click.IntRange(1, 1024), default=None,
              help="Split a new index into N shards by document (docs/scaling.md); with --rebuild, change an "
              "index's count. [default: the index's count, 1 for a new index]")
def index_command(settings: Settings, rebuild: bool, wait: bool, ray_address: str | None,
                  shards: int | None) -> None:
    """Build the index, or update it to match the corpus."""
    from qa.service import Assistant

    address = ray_address or settings.ray_address
    show = sys.stderr.isatty()
    assistant = Assistant(settings)
    if not address:
        summary = assistant.reindex(rebuild=rebuild, wait=wait, show_progress=show, merge=False, shards=shards)
        click.echo(summary.describe())
    else:
        from tqdm import tqdm

        from qa.indexing.distributed import RayEmbedding

        with RayEmbedding(settings, address, status=lambda line: tqdm.write(line, file=sys.stderr)) as embed:
            summary = assistant.reindex(rebuild=rebuild, wait=wait, show_progress=show, embed=embed, merge=False,
                                        shards=shards)
        click.echo(summary.describe())
    if summary.touched:  # merged here, before exiting, so that no later request waits for it
        merged = assistant.merge().describe()
        if merged:
            click.echo(merged)
    count = len(_shard_folders(settings))
    click.echo(f"index: {assistant.segments.describe()}" + (f" in {count} shards" if count > 1 else ""))
    if summary.skipped:
        sys.exit(EXIT_SKIPPED)


@main.command("ask")
@common_options
@click.argument("question")
@click.option("--k", default=5, show_default=True, help="Number of passages (1-20).")
@click.option("--json", "as_json", is_flag=True, help="Print exactly the /ask response body.")
def ask_command(settings: Settings, question: str, k: int, as_json: bool) -> None:
    """Answer QUESTION with cited passages."""
    from qa.service import Assistant

    answer = Assistant(settings).ask(question, k)
    if as_json:
        click.echo(json.dumps(answer.to_dict(), ensure_ascii=False))
        return
    click.echo(answer.answer)
    click.echo(f"confidence {answer.confidence:.2f}")
    click.echo()
    for p in answer.passages:
        where = " · ".join(x for x in (p.section and f"§ {p.section}", p.page and f"p. {p.page}") if x)
        click.secho(f"[{p.rank}] {p.title} ({p.doc_id}){' · ' + where if where else ''} · score {p.score:.3f}",
                    bold=True)
        about = " · ".join(x for x in (p.authors and "by " + ", ".join(p.authors), p.publisher, p.date) if x)
        if about:
            click.echo(f"    {about}")
        text = p.text
        for a, b in sorted(p.highlights, reverse=True):
            text = text[:a] + click.style(text[a:b], underline=True, bold=True) + text[b:]
        click.echo("    " + " ".join(text.split()))
        click.echo()


class _ReplicaBounds(click.ParamType):
    """R or MIN-MAX (config.replica_bounds) as (MIN, MAX)."""

    name = "replicas"

    def convert(self, value, param, ctx) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            return replica_bounds(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@main.command("serve")
@common_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes; each follows the newest published index.")
@click.option("--forwarded-allow-ips", "forwarded", metavar="IPS", default="", envvar="QA_FORWARDED_ALLOW_IPS",
              help="Reverse proxies (comma-separated addresses or networks, or *) whose X-Forwarded-For names the "
              "client; unset, the client is the address that connected [env QA_FORWARDED_ALLOW_IPS].")
@click.option("--ray", "ray_address", metavar="ADDRESS", default=None,
              help="Serve on Ray Serve: one deployment per shard, the app asking them all (docs/scaling.md); "
              "host:port, `auto` or `local` as for `qa index --ray`. The HTTP proxy listens on --host/--port.")
@click.option("--replicas", type=_ReplicaBounds(), default="1", show_default=True, metavar="R|MIN-MAX",
              help="With --ray: replicas of each shard's deployment; MIN-MAX lets Serve autoscale between them.")
@click.option("--access-log/--no-access-log", default=False, show_default=True, envvar="QA_ACCESS_LOG",
              help="Log a line per request (method, path, status). Off by default: uvicorn writes it before the "
              "response leaves, about 0.2 ms a request (docs/benchmarks.md) [env QA_ACCESS_LOG].")
def serve_command(settings: Settings, host: str, port: int, workers: int, forwarded: str, ray_address: str | None,
                  replicas: tuple[int, int], access_log: bool) -> None:
    """Serve the web UI and the HTTP API; builds the index first if there is none."""
    import uvicorn

    from qa.service import Assistant

    if not settings.corpus_dir.is_dir():
        raise CorpusMissing(f"corpus folder {settings.corpus_dir} does not exist: check the --corpus path "
                      "(or QA_CORPUS_DIR), or create the folder")
    unusable = _unusable_index(settings)
    if unusable:
        how = "upgrading the index, its vectors reused" if _upgradable(settings) else "building the index"
        click.echo(f"{unusable}: {how} from {settings.corpus_dir}", err=True)
        click.echo(Assistant(settings).reindex(wait=True, show_progress=sys.stderr.isatty()).describe(), err=True)
    if ray_address:
        from qa.serving.ray_serve import run

        run(settings, ray_address, host, port, replicas)
        return
    # Workers are separate processes: hand them the settings through the environment.
    os.environ["QA_CORPUS_DIR"] = str(settings.corpus_dir)
    os.environ["QA_INDEX_DIR"] = str(settings.index_dir)
    # uvicorn would trust a proxy on 127.0.0.1 by default; here only the proxies named are trusted, so
    # a client cannot pick its own address (and its own throttle) by sending X-Forwarded-For.
    uvicorn.run("qa.serving.api:app_from_env", factory=True, host=host, port=port, workers=workers, log_level="info",
                access_log=access_log, proxy_headers=bool(forwarded), forwarded_allow_ips=forwarded or None)


@main.command("mcp")
@common_options
def mcp_command(settings: Settings) -> None:
    """Serve the MCP tools (ask, search, list_documents, read_document) over stdio, for an AI assistant.

    Builds the index first if there is none. stdout carries MCP only; progress and logs go to stderr."""
    import threading

    from qa.service import Assistant
    from qa.serving.mcp_tools import build_server

    if not settings.corpus_dir.is_dir():
        raise CorpusMissing(f"corpus folder {settings.corpus_dir} does not exist: check the --corpus path "
                            "(or QA_CORPUS_DIR), or create the folder")
    assistant = Assistant(settings)
    with _stdout_to_stderr():  # a client reads stdout as MCP: nothing else may reach it
        unusable = _unusable_index(settings)
        if unusable:
            click.echo(f"{unusable}: building the index from {settings.corpus_dir}", err=True)
            click.echo(assistant.reindex(wait=True, show_progress=sys.stderr.isatty()).describe(), err=True)

    @contextlib.asynccontextmanager
    async def warm_up(_server):
        # Started once the SDK serves stdio, which points fd 1 at stderr and keeps the real stdout for MCP:
        # the client's handshake is answered at once, the model loads meanwhile (the first answer waits).
        threading.Thread(target=_warm_up, args=(assistant,), daemon=True).start()
        yield

    build_server(assistant, lifespan=warm_up).run("stdio")


def _warm_up(assistant) -> None:
    try:
        assistant.generation()  # loads the model and opens the index
    except QAError as exc:  # every tool call reports it; say it once here too
        click.echo(f"qa mcp: {exc}", err=True)


@contextlib.contextmanager
def _stdout_to_stderr():
    """Send whatever writes to stdout (Python's or a library's C code's) to stderr for a while."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _upgradable(settings: Settings) -> bool:
    """An index of an older format (4: before segments; 5: without stored sentence data), which `qa index`
    upgrades without encoding anything."""
    from qa.indexing.build import upgradable
    from qa.indexing.generations import current_generation, read_manifest

    folder = _shard_folders(settings)[0]
    manifest = read_manifest(folder)
    return manifest is not None and upgradable(current_generation(folder), manifest, settings)


def _shard_folders(settings: Settings) -> list[Path]:
    from qa.indexing.shards import folders

    return folders(settings.index_dir)


def _unusable_index(settings: Settings) -> str | None:
    """Why the server could not answer from the index as it stands (none, or an older format or
    other settings built it), or None. A server that starts on such an index would answer 503 to
    everything until someone ran `qa index`, so `qa serve` builds it first."""
    from qa.errors import IndexMismatch
    from qa.indexing.build import check_compatible
    from qa.indexing.generations import read_manifest

    for folder in _shard_folders(settings):  # every shard, for a sharded index
        manifest = read_manifest(folder)
        if manifest is None:
            return f"no index in {folder}"
        try:
            check_compatible(manifest, settings)
        except IndexMismatch as exc:
            return exc.reason
    return None


@main.command("eval")
@common_options
@click.argument("questions", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--k", default=5, show_default=True, help="Number of passages per question (1-20).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def eval_command(settings: Settings, questions: Path, k: int, as_json: bool) -> None:
    """Run a question set (JSON lines: question, evidence) and print its metrics."""
    from qa.answering.evaluation import format_report, run_eval
    from qa.service import Assistant

    metrics = run_eval(Assistant(settings), questions, k)
    click.echo(json.dumps(metrics, indent=2) if as_json else format_report(metrics))


if __name__ == "__main__":
    main()
